// Shared denoiser calls (docs/sampler.md, "Batching"): concurrent generations of one bundle and
// one latent shape (C, t, h, w) send their velocity calls here; calls that arrive while others
// run are concatenated row-wise into one denoiser.onnx call of at most `maxRows` rows, and the
// result is split back. Rows never interact and every row carries its own flow time, label and
// context count (leading latent frames given), so generations at different steps, with
// different labels, guidance, methods or context (image-to-video, extension, none), share calls.
//
// Determinism: a row's output must not depend on the batch it ran in, or the same seed would
// give different bytes alone and batched. onnxruntime's CPU kernels give bit-identical rows for
// any batch size on the denoiser graphs (tests/node/batcher.test.ts checks it on the fixture and
// on a compact-sized DiT); `fixedBatch` pads every call to exactly `maxRows` rows, so that every
// row always runs at one batch size, for providers where that does not hold.
//
// Isolation: a call that fails with rows of several requests is run again one request piece at
// a time, so only the failing request fails. Cancel: an aborted request leaves the queue (or its
// running call's result is dropped) at once, so a canceled generation stops within one step.

import type { Bundle } from "../bundle.ts";
import { PipelineError } from "../pipeline-error.ts";
import type { ModelRuntime } from "../runtime.ts";
import { runDenoiser } from "./denoiser.ts";
import type { VelocityFn } from "./sampler.ts";

export interface BatcherOptions {
  /** Videos per shared call (default 8): a call holds at most 2 * maxBatch rows, i.e. maxBatch
   * guided videos (a labelled and a null row each) or 2 * maxBatch unguided ones. */
  maxBatch?: number;
  /** Pad every call with dummy rows to exactly 2 * maxBatch rows. Default false. */
  fixedBatch?: boolean;
  /** Calls of one group in flight at once; default the pool's size. */
  maxInFlight?: number;
}

export interface BatcherStats {
  /** denoiser.onnx calls made. */
  calls: number;
  /** Request rows sent (padding not counted). */
  rows: number;
  /** The most request rows in one call. */
  peakRows: number;
  /** Calls that held rows of more than one request. */
  sharedCalls: number;
  /** Failed shared calls whose pieces were run again alone. */
  isolatedRetries: number;
}

interface Request {
  x: Float32Array;
  t: number;
  labels: BigInt64Array;
  /** Given leading latent frames per row; null: none. */
  context: BigInt64Array | null;
  out: Float32Array;
  pending: number;
  settled: boolean;
  resolve: (v: Float32Array) => void;
  reject: (err: Error) => void;
}

interface Piece {
  req: Request;
  /** First row within the request, and the row count (<= maxRows). */
  start: number;
  rows: number;
  /** Run alone: a shared call with this piece failed. */
  alone: boolean;
}

interface Group {
  key: string;
  bundle: Bundle;
  /** (C, t, h, w) and their product. */
  dims: number[];
  per: number;
  queue: Piece[];
  inFlight: number;
  scheduled: boolean;
}

export const DEFAULT_MAX_BATCH = 8;

export class DenoiserBatcher {
  readonly maxRows: number;
  readonly fixedBatch: boolean;
  readonly #runtime: ModelRuntime;
  readonly #maxInFlight: number;
  readonly #groups = new Map<string, Group>();
  #stats: BatcherStats = { calls: 0, rows: 0, peakRows: 0, sharedCalls: 0, isolatedRetries: 0 };

  constructor(runtime: ModelRuntime, options: BatcherOptions = {}) {
    const maxBatch = options.maxBatch ?? DEFAULT_MAX_BATCH;
    if (!Number.isInteger(maxBatch) || maxBatch < 1) {
      throw new RangeError(`maxBatch must be an integer >= 1, got ${maxBatch}`);
    }
    this.maxRows = 2 * maxBatch;
    this.fixedBatch = options.fixedBatch ?? false;
    this.#runtime = runtime;
    this.#maxInFlight = Math.max(1, options.maxInFlight ?? runtime.pool.size);
  }

  stats(): BatcherStats {
    return { ...this.#stats };
  }

  /** The bundle's denoiser as a sampler velocity function whose calls are shared. */
  velocity(bundle: Bundle, signal?: AbortSignal): VelocityFn {
    return (x, dims, t, labels, context) =>
      this.#submit(bundle, x, dims, t, labels, context ?? null, signal);
  }

  #submit(
    bundle: Bundle,
    x: Float32Array,
    dims: readonly number[],
    t: number,
    labels: BigInt64Array,
    context: BigInt64Array | null,
    signal?: AbortSignal,
  ): Promise<Float32Array> {
    const rows = dims[0] as number;
    const inner = dims.slice(1);
    const per = inner.reduce((a, d) => a * d, 1);
    if (labels.length !== rows || x.length !== rows * per || (context && context.length !== rows)) {
      return Promise.reject(
        new RangeError(`x of ${x.length} values and ${labels.length} labels for dims ${dims}`),
      );
    }
    if (signal?.aborted) return Promise.reject(new PipelineError("aborted", "aborted", 500));
    const key = `${bundle.name}\0${bundle.sha256}\0${inner.join("x")}`;
    let group = this.#groups.get(key);
    if (!group) {
      group = { key, bundle, dims: inner, per, queue: [], inFlight: 0, scheduled: false };
      this.#groups.set(key, group);
    }
    const g = group;
    return new Promise<Float32Array>((resolve, reject) => {
      const onAbort = () => {
        g.queue = g.queue.filter((p) => p.req !== req);
        settle(() => reject(new PipelineError("aborted", "aborted", 500)));
      };
      const settle = (fn: () => void) => {
        if (req.settled) return;
        req.settled = true;
        signal?.removeEventListener("abort", onAbort);
        fn();
      };
      const req: Request = {
        x,
        t,
        labels,
        context,
        out: new Float32Array(x.length),
        pending: 0,
        settled: false,
        resolve: (v) => settle(() => resolve(v)),
        reject: (err) => settle(() => reject(err)),
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      for (let start = 0; start < rows; start += this.maxRows) {
        const n = Math.min(this.maxRows, rows - start);
        g.queue.push({ req, start, rows: n, alone: false });
        req.pending++;
      }
      this.#schedule(g);
    });
  }

  /** Flushes on the next turn of the event loop, so that every generation whose previous call
   * just returned has sent its next one. */
  #schedule(g: Group): void {
    if (g.scheduled) return;
    g.scheduled = true;
    setImmediate(() => {
      g.scheduled = false;
      this.#flush(g);
    });
  }

  #flush(g: Group): void {
    while (g.queue.length > 0 && g.inFlight < this.#maxInFlight) {
      // Spread the queued rows over the pool's idle workers (at most maxRows per call), so that
      // one request or a group of them uses every free core; with fixedBatch, fill each call.
      const pool = this.#runtime.pool.stats();
      const idle = Math.max(1, pool.size - pool.busy - pool.queued);
      const slots = Math.min(idle, this.#maxInFlight - g.inFlight);
      const queued = g.queue.reduce((n, p) => n + (p.alone ? 0 : p.rows), 0);
      const target = this.fixedBatch
        ? this.maxRows
        : Math.min(this.maxRows, Math.max(1, Math.ceil(queued / slots)));
      const first = g.queue.shift() as Piece;
      const pieces = [first];
      let rows = first.rows;
      if (!first.alone) {
        if (rows > target) {
          g.queue.unshift(this.#split(first, target));
          rows = target;
        }
        for (let i = 0; i < g.queue.length && rows < target; ) {
          const p = g.queue[i] as Piece;
          if (p.alone) {
            i++;
            continue;
          }
          if (rows + p.rows > target) g.queue.splice(i + 1, 0, this.#split(p, target - rows));
          pieces.push(p);
          rows += p.rows;
          g.queue.splice(i, 1);
        }
      }
      void this.#call(g, pieces, rows);
    }
    if (g.queue.length === 0 && g.inFlight === 0 && this.#groups.get(g.key) === g) {
      this.#groups.delete(g.key);
    }
  }

  /** Cuts `p` to its first `rows` rows; returns the rest as a new piece of the same request. */
  #split(p: Piece, rows: number): Piece {
    const rest = { req: p.req, start: p.start + rows, rows: p.rows - rows, alone: false };
    p.rows = rows;
    p.req.pending++;
    return rest;
  }

  async #call(g: Group, pieces: Piece[], rows: number): Promise<void> {
    g.inFlight++;
    const { per } = g;
    const callRows = this.fixedBatch ? Math.max(rows, this.maxRows) : rows;
    const x = new Float32Array(callRows * per);
    const t = new Float32Array(callRows).fill(1);
    const label = new BigInt64Array(callRows);
    const context = new BigInt64Array(callRows);
    let row = 0;
    for (const p of pieces) {
      x.set(p.req.x.subarray(p.start * per, (p.start + p.rows) * per), row * per);
      t.fill(p.req.t, row, row + p.rows);
      label.set(p.req.labels.subarray(p.start, p.start + p.rows), row);
      if (p.req.context) context.set(p.req.context.subarray(p.start, p.start + p.rows), row);
      row += p.rows;
    }
    const s = this.#stats;
    s.calls++;
    s.rows += rows;
    s.peakRows = Math.max(s.peakRows, rows);
    if (new Set(pieces.map((p) => p.req)).size > 1) s.sharedCalls++;
    try {
      const dims = [callRows, ...g.dims];
      const v = await runDenoiser(this.#runtime, g.bundle, x, dims, t, label, undefined, context);
      row = 0;
      for (const p of pieces) {
        if (!p.req.settled) {
          p.req.out.set(v.subarray(row * per, (row + p.rows) * per), p.start * per);
          if (--p.req.pending === 0) p.req.resolve(p.req.out);
        }
        row += p.rows;
      }
    } catch (err) {
      const live = pieces.filter((p) => !p.req.settled);
      if (live.length > 1) {
        // One request may be at fault: run each piece again on its own.
        s.isolatedRetries++;
        g.queue.unshift(...live.map((p) => ({ ...p, alone: true })));
      } else {
        for (const p of live) {
          g.queue = g.queue.filter((q) => q.req !== p.req);
          p.req.reject(err as Error);
        }
      }
    } finally {
      g.inFlight--;
      this.#schedule(g);
    }
  }
}
