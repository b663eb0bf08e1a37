// The inside of one pool worker (see session-pool.ts): one lazily opened onnxruntime session per
// ONNX file, running one request at a time, so that session.run never blocks the main thread.
// Output buffers are transferred back, not copied. The same code runs as a worker thread or as a
// child process of its own (the pool's isolation "process"): only the channel differs.

import { parentPort, workerData } from "node:worker_threads";
import { exitWithParent, sendToParent } from "../parent-channel.mjs";
import { PipelineError } from "../pipeline-error.ts";
import { lowerThreadPriority } from "../thread-priority.mjs";
import { describeSession, openSession, runSession, type Session } from "./onnx-session.ts";
import {
  type WorkerInit,
  type WorkerReply,
  type WorkerRequest,
  wholeBuffers,
} from "./worker-protocol.ts";

const inProcess = parentPort === null && typeof process.send === "function";
const init = (
  inProcess ? JSON.parse(process.env.DIFFUSABLE_WORKER_INIT ?? "{}") : workerData
) as WorkerInit;
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

/** The channel to the pool: the thread's port, or the child process's IPC channel. */
interface Channel {
  on(listener: (req: WorkerRequest | { op: "close" }) => void): void;
  post(message: unknown, transfer?: ArrayBuffer[]): void;
  close(): void;
}

function channel(): Channel {
  const thread = parentPort;
  if (thread !== null) {
    return {
      on: (listener) => thread.on("message", listener),
      post: (message, transfer) => thread.postMessage(message, transfer),
      close: () => thread.close(),
    };
  }
  if (!inProcess) throw new Error("session-worker.ts must run in a worker thread or child process");
  exitWithParent(); // the pool's process is gone, even SIGKILLed
  return {
    on: (listener) => process.on("message", listener as (m: unknown) => void),
    post: (message) => sendToParent(message),
    close: () => process.disconnect(),
  };
}

const port = channel();
port.on(async (req) => {
  if (req.op === "close") {
    // A graceful exit: release the sessions, then let the thread (or process) end on its own.
    for (const s of sessions.values()) await (await s.catch(() => null))?.release();
    sessions.clear();
    port.close();
    return;
  }
  const reply = await handle(req);
  const transfer = "outputs" in reply && reply.outputs ? wholeBuffers(reply.outputs) : [];
  try {
    port.post(reply, transfer);
  } catch {
    port.post(reply); // e.g. a buffer owned by onnxruntime that cannot be detached
  }
});
// onnxruntime's native module is loaded (by the imports above): from now on the pool may stop
// this thread. Terminating a worker in the middle of that load aborts the whole process.
port.post({ ready: true });
