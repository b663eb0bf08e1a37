// A Node script run as a child process that talks over an IPC channel: the model workers in
// their own processes (onnx/session-pool.ts, isolation "process") and the process host that
// starts ffmpeg (media/process-host.ts). Messages use structured clone ("advanced"
// serialization), so typed arrays, BigInt64Array and Uint8Array chunks arrive as they left.
// The child starts through nice(1) at the work's nice value (never below the server's own), so
// every thread it ever has (V8's and libuv's, made at its start-up, and those it starts later)
// runs there. The scripts exit when their channel closes, so none outlives the server, even one
// killed with SIGKILL.

import { type ChildProcess, spawn } from "node:child_process";
import { getPriority } from "node:os";
import { fileURLToPath } from "node:url";

export function spawnChildWorker(
  script: URL,
  options: { nice: number; env?: Record<string, string> },
): ChildProcess {
  // No execArgv: the scripts load their own TypeScript loader if they need one, and a bench's
  // --import (a loop monitor) or --cpu-prof belongs to the server process, not to its helpers.
  const argv = [process.execPath, fileURLToPath(script)];
  // nice(1) adds to the server's own value: ask for the difference, so the child lands at
  // `nice` (as the worker threads do, thread-priority.mjs), or stays at the server's if higher.
  const raise = options.nice - getPriority();
  const [command, ...args] = raise > 0 ? ["nice", "-n", String(raise), ...argv] : argv;
  return spawn(command as string, args, {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    serialization: "advanced",
    env: { ...process.env, ...options.env },
  });
}

/** Whether the child (its process and its IPC channel) keeps this process alive. */
export function holdChild(child: ChildProcess, hold: boolean): void {
  if (hold) {
    child.ref();
    child.channel?.ref();
  } else {
    child.unref();
    child.channel?.unref();
  }
}

/** Sends when the channel is open; a message racing the child's exit is dropped (its exit
 *  event tells the rest). */
export function sendToChild(child: ChildProcess, message: unknown): void {
  if (child.connected) child.send(message as object, undefined, {}, () => {});
}
