// Lowers the CPU priority (raises the nice value) of the calling thread, so that the model and
// ffmpeg work it starts yields the cores to the HTTP event loop when both want them. On Linux nice
// is per thread, and the threads and processes a thread starts inherit its value: onnxruntime's
// operator threads (made when a session opens, on the worker that opens it) and ffmpeg (forked by
// the process host, process-worker.mjs, on its main thread). On an idle machine it changes
// nothing. Plain JS: the process host loads it without a TypeScript loader.

import { readlinkSync } from "node:fs";
import { getPriority, setPriority } from "node:os";

/**
 * Sets this thread's nice value to `nice` (0..19; 0 leaves it), never lowering it: a server
 * started at a higher nice keeps it (lowering needs privilege). Does nothing where the system
 * has no per-thread priority to set (no /proc/thread-self: not Linux).
 * @param {number} nice
 */
export function lowerThreadPriority(nice) {
  if (!nice) return;
  let tid;
  try {
    tid = Number(readlinkSync("/proc/thread-self").split("/").pop()); // "<pid>/task/<tid>"
  } catch {
    return;
  }
  if (getPriority(tid) < nice) setPriority(tid, nice); // raising nice needs no privilege
}
