// The messages between the session pool (session-pool.ts) and its workers (session-worker.ts).

import type { ErrorStatus } from "../pipeline-error.ts";
import type { SessionDescription, TensorValue } from "./onnx-session.ts";

export type Feeds = Record<string, TensorValue>;
export type Outputs = Record<string, TensorValue>;

/** The tensors' ArrayBuffers that can move across the channel without a copy: those a tensor
 * owns whole (a view into a larger pooled buffer must be copied). Each buffer once. */
export function wholeBuffers(tensors: Feeds | Outputs): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const v of Object.values(tensors)) {
    const buf = v.data.buffer;
    if (
      buf instanceof ArrayBuffer &&
      v.data.byteOffset === 0 &&
      v.data.byteLength === buf.byteLength
    ) {
      out.add(buf);
    }
  }
  return [...out];
}

export interface WorkerInit {
  providers: string[];
  intraOpThreads: number;
  /** The worker thread's nice value, inherited by onnxruntime's operator threads (0: as is). */
  nice: number;
}
export type WorkerRequestBody =
  | { op: "run"; model: string; feeds: Feeds }
  | { op: "describe"; model: string };
export type WorkerRequest = WorkerRequestBody & { id: number };
export type WorkerReply =
  | { id: number; ok: true; outputs?: Outputs; description?: SessionDescription }
  | { id: number; ok: false; error: WorkerError };

/** An error raised in a worker; code and status when it was a PipelineError. */
export interface WorkerError {
  name: string;
  message: string;
  code?: string;
  status?: ErrorStatus;
}
