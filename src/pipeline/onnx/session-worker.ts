// The inside of one pool worker (see session-pool.ts): one lazily opened onnxruntime session per
// ONNX file, running one request at a time, so that session.run never blocks the main thread.
// Output buffers are transferred back, not copied.

import { parentPort, workerData } from "node:worker_threads";
import { PipelineError } from "../pipeline-error.ts";
import { lowerThreadPriority } from "../thread-priority.mjs";
import {
  describeSession,
  openSession,
  runSession,
  type Session,
  type TensorValue,
} from "./onnx-session.ts";
import type { WorkerInit, WorkerReply, WorkerRequest } from "./worker-protocol.ts";

const init = workerData as WorkerInit;
// Before any session opens: onnxruntime's operator threads are made then and inherit it.
lowerThreadPriority(init.nice);
const sessions = new Map<string, Promise<Session>>();

function session(path: string): Promise<Session> {
  let s = sessions.get(path);
  if (s === undefined) {
    s = openSession(path, {
      providers: init.providers,
      ...(init.intraOpThreads ? { intraOpThreads: init.intraOpThreads } : {}),
    });
    // A failed open is not cached: the file may be fixed (or the error transient).
    s.catch(() => sessions.delete(path));
    sessions.set(path, s);
  }
  return s;
}

/** The ArrayBuffers that can move to the main thread without a copy. */
function transferable(values: Record<string, TensorValue>): ArrayBuffer[] {
  const seen = new Set<ArrayBuffer>();
  for (const v of Object.values(values)) {
    const buf = v.data.buffer;
    if (
      buf instanceof ArrayBuffer &&
      v.data.byteOffset === 0 &&
      v.data.byteLength === buf.byteLength
    ) {
      seen.add(buf);
    }
  }
  return [...seen];
}

async function handle(req: WorkerRequest): Promise<WorkerReply> {
  try {
    if (req.op === "describe") {
      return { id: req.id, ok: true, description: describeSession(await session(req.model)) };
    }
    const outputs = await runSession(await session(req.model), req.feeds);
    return { id: req.id, ok: true, outputs };
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    // A PipelineError (e.g. checkFeeds' "model_inputs") keeps its code and status across the
    // thread boundary; anything else (onnxruntime's own errors) arrives as model_failed.
    const coded = e instanceof PipelineError ? { code: e.code, status: e.status } : {};
    return { id: req.id, ok: false, error: { name: e.name, message: e.message, ...coded } };
  }
}

const port = parentPort;
if (port === null) throw new Error("session-worker.ts must run in a worker thread");
port.on("message", async (req: WorkerRequest | { op: "close" }) => {
  if (req.op === "close") {
    // A graceful exit: release the sessions, then let the thread end on its own.
    for (const s of sessions.values()) await (await s.catch(() => null))?.release();
    sessions.clear();
    port.close();
    return;
  }
  const reply = await handle(req);
  const transfer = "outputs" in reply && reply.outputs ? transferable(reply.outputs) : [];
  try {
    port.postMessage(reply, transfer);
  } catch {
    port.postMessage(reply); // e.g. a buffer owned by onnxruntime that cannot be detached
  }
});
// onnxruntime's native module is loaded (by the imports above): from now on the pool may stop
// this thread. Terminating a worker in the middle of that load aborts the whole process.
port.postMessage({ ready: true });
