// A pool of worker threads that run onnxruntime sessions (session-worker.ts), because session.run
// blocks the thread it runs on: the event loop stays free for HTTP while models run.
// Each worker opens one session per ONNX file, lazily, and runs one request at a time; requests
// wait in one FIFO queue and go to whichever worker is idle. Errors raised in a worker (including
// onnx-session.ts's checkFeeds report of names, dims and dtypes) come back with their message intact.

import { Worker } from "node:worker_threads";
import { defaultThreads } from "../../env.ts";
import { holdChild, sendToChild, spawnChildWorker } from "../child-worker.ts";
import { PipelineError } from "../pipeline-error.ts";
import type { SessionDescription } from "./onnx-session.ts";
import { disableOrtTelemetry } from "./ort-env.ts";
import {
  type Feeds,
  type Outputs,
  type WorkerRequestBody as Request,
  type WorkerError,
  type WorkerInit,
  type WorkerReply,
  wholeBuffers,
} from "./worker-protocol.ts";

export type { Feeds, Outputs };

export interface PoolOptions {
  /** Worker threads; default: the machine's cores. */
  size?: number;
  /** onnxruntime execution providers in order of preference; default ["cpu"]. */
  providers?: readonly string[];
  /** Threads inside one operator, per worker; default: cores / size (at least 1). */
  intraOpThreads?: number;
  /**
   * Nice value (0..19) of the workers and their operator threads, so that model work yields the
   * cores to the event loop (thread-priority.mjs); default 0.
   */
  nice?: number;
  /**
   * "thread" (default): workers are threads of this process. "process": each worker is a child
   * process of its own, so that its memory mappings never make this process's event loop wait:
   * threads of one process share one address-space lock, which page faults take when a mapping
   * changes, and the model work's allocation churn held the loop there ~15% of a loaded run
   * (docs/results/2026-12-03-load.md). Tensors are then copied, not moved, between processes.
   */
  isolation?: "thread" | "process";
}

export interface RunOptions {
  /**
   * Move the feeds' ArrayBuffers to the worker instead of copying them. The caller's arrays are
   * then detached (length 0). Only buffers a feed owns whole are moved; others are copied.
   */
  transfer?: boolean;
  signal?: AbortSignal;
}

interface Job {
  request: Request;
  transfer: ArrayBuffer[];
  resolve: (reply: WorkerReply & { ok: true }) => void;
  reject: (err: Error) => void;
}

/** What the pool needs of a worker, a thread or a child process alike. */
interface WorkerHandle {
  postMessage(message: unknown, transfer?: ArrayBuffer[]): void;
  on(event: "message", listener: (message: never) => void): void;
  on(event: "error", listener: (err: Error) => void): void;
  on(event: "exit", listener: (code: number | null) => void): void;
  ref(): void;
  unref(): void;
  terminate(): Promise<unknown>;
}

/** A worker in a child process (child-worker.ts), its init in the environment. */
function processWorker(init: WorkerInit): WorkerHandle {
  const child = spawnChildWorker(WORKER_URL, {
    nice: init.nice,
    env: { DIFFUSABLE_WORKER_INIT: JSON.stringify(init) },
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    postMessage: (message) => sendToChild(child, message),
    on: (event: string, listener: (...args: never[]) => void) => {
      child.on(event, listener as (...args: unknown[]) => void);
    },
    ref: () => holdChild(child, true),
    unref: () => holdChild(child, false),
    terminate: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}

interface Slot {
  worker: WorkerHandle;
  job: (Job & { id: number }) | null;
  /** Resolves once the worker has loaded onnxruntime (or died). */
  ready: Promise<void>;
  /** Resolves when the thread has exited. */
  exited: Promise<void>;
  /** Called whenever the slot's job settles (close() waits on it). */
  onIdle: (() => void) | null;
}

const WORKER_URL = new URL("./session-worker.mjs", import.meta.url);

/** Maps a worker's error onto the pipeline's error type, keeping its message word for word. */
function workerError(error: WorkerError): PipelineError {
  return new PipelineError(error.code ?? "model_failed", error.message, error.status ?? 500);
}

export class SessionPool {
  readonly size: number;
  readonly providers: string[];
  readonly intraOpThreads: number;
  readonly nice: number;
  readonly isolation: "thread" | "process";
  #slots: Slot[] = [];
  #queue: Job[] = [];
  #nextId = 1;
  #closed = false;
  #busyPeak = 0;
  #completed = 0;

  constructor(options: PoolOptions = {}) {
    const cores = defaultThreads();
    this.size = Math.max(1, Math.floor(options.size ?? cores));
    this.providers = [...(options.providers ?? ["cpu"])];
    this.intraOpThreads = Math.max(1, options.intraOpThreads ?? Math.floor(cores / this.size));
    this.nice = options.nice ?? 0;
    this.isolation = options.isolation ?? "thread";
    disableOrtTelemetry(); // here, in the main thread: the workers' sessions read it natively
    for (let i = 0; i < this.size; i++) this.#slots.push(this.#spawn());
  }

  #spawn(): Slot {
    const init: WorkerInit = {
      providers: this.providers,
      intraOpThreads: this.intraOpThreads,
      nice: this.nice,
    };
    const worker: WorkerHandle =
      this.isolation === "process"
        ? processWorker(init)
        : (new Worker(WORKER_URL, { workerData: init }) as unknown as WorkerHandle);
    let markReady: () => void = () => {};
    let markExited: () => void = () => {};
    const slot: Slot = {
      worker,
      job: null,
      ready: new Promise((resolve) => {
        markReady = resolve;
      }),
      exited: new Promise((resolve) => {
        markExited = resolve;
      }),
      onIdle: null,
    };
    const settle = () => {
      slot.job = null;
      slot.onIdle?.();
    };
    worker.on("message", (reply: WorkerReply | { ready: true }) => {
      if ("ready" in reply) {
        markReady();
        return;
      }
      const job = slot.job;
      if (job === null || job.id !== reply.id) return;
      settle();
      this.#completed++;
      if (reply.ok) job.resolve(reply);
      else job.reject(workerError(reply.error));
      this.#dispatch();
    });
    // A worker that dies (native crash, out of memory) fails its request and is replaced.
    const onDeath = (why: string) => {
      markReady();
      const job = slot.job;
      settle();
      job?.reject(new PipelineError("model_failed", `model worker died: ${why}`, 500));
      if (this.#closed) return;
      const index = this.#slots.indexOf(slot);
      if (index >= 0) this.#slots[index] = this.#spawn();
      this.#dispatch();
    };
    worker.on("error", (err) => onDeath(err.message));
    worker.on("exit", (code) => {
      markExited();
      if (!this.#closed) onDeath(`exit code ${code}`);
      else markReady();
    });
    worker.unref(); // an idle pool does not keep the process alive
    return slot;
  }

  #dispatch(): void {
    if (this.#closed) return; // close() holds the workers (ref'd) until they exit
    for (const slot of this.#slots) {
      if (slot.job !== null) continue;
      const job = this.#queue.shift();
      if (job === undefined) break;
      const id = this.#nextId++;
      slot.job = { ...job, id };
      slot.worker.ref();
      try {
        slot.worker.postMessage({ ...job.request, id }, job.transfer);
      } catch (err) {
        slot.job = null;
        job.reject(err as Error);
      }
    }
    for (const slot of this.#slots) if (slot.job === null) slot.worker.unref();
    this.#busyPeak = Math.max(this.#busyPeak, this.#slots.filter((s) => s.job !== null).length);
  }

  #submit(request: Request, transfer: ArrayBuffer[], signal?: AbortSignal) {
    if (this.#closed)
      return Promise.reject(new PipelineError("closed", "the model pool is closed", 500));
    if (signal?.aborted) return Promise.reject(new PipelineError("aborted", "aborted", 500));
    return new Promise<WorkerReply & { ok: true }>((resolve, reject) => {
      const onAbort = () => {
        // A queued request is dropped; a running one finishes in its worker, unobserved.
        const i = this.#queue.indexOf(job);
        if (i >= 0) this.#queue.splice(i, 1);
        reject(new PipelineError("aborted", "aborted", 500));
      };
      // The listener goes once the request is over: a job's signal sees hundreds of runs, and
      // kept listeners pile up (MaxListenersExceededWarning after 10).
      const job: Job = {
        request,
        transfer,
        resolve: (reply) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(reply);
        },
        reject: (err) => {
          signal?.removeEventListener("abort", onAbort);
          reject(err);
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#queue.push(job);
      this.#dispatch();
    });
  }

  /** Runs the model at this path (its session opened on first use in each worker). */
  async run(model: string, feeds: Feeds, options: RunOptions = {}): Promise<Outputs> {
    const transfer = options.transfer ? wholeBuffers(feeds) : [];
    const reply = await this.#submit({ op: "run", model, feeds }, transfer, options.signal);
    if (!reply.outputs) throw new PipelineError("model_failed", "the worker sent no outputs", 500);
    return reply.outputs;
  }

  /** Input and output names, dtypes and dims of the model at this path. */
  async describe(model: string): Promise<SessionDescription> {
    const reply = await this.#submit({ op: "describe", model }, []);
    if (!reply.description)
      throw new PipelineError("model_failed", "the worker sent no description", 500);
    return reply.description;
  }

  /** busyPeak: the most requests that ran at the same time since the pool started. */
  stats(): { size: number; busy: number; queued: number; busyPeak: number; completed: number } {
    return {
      size: this.size,
      busy: this.#slots.filter((s) => s.job !== null).length,
      queued: this.#queue.length,
      busyPeak: this.#busyPeak,
      completed: this.#completed,
    };
  }

  /**
   * Fails queued requests, lets running ones finish (up to `graceMs`), then stops the workers:
   * each releases its sessions and exits. A worker is never stopped while it loads onnxruntime
   * (that aborts the process); one that does not exit in time is terminated.
   */
  async close(graceMs = 30_000): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const job of this.#queue.splice(0)) {
      job.reject(new PipelineError("closed", "the model pool was closed", 500));
    }
    const within = (p: Promise<void>, ms: number) =>
      Promise.race([p, new Promise<void>((resolve) => setTimeout(resolve, ms).unref())]);
    await Promise.all(
      this.#slots.map(async (slot) => {
        slot.worker.ref();
        await slot.ready; // no time limit: terminating mid-load is what must not happen
        if (slot.job !== null) {
          await within(
            new Promise<void>((resolve) => {
              slot.onIdle = resolve;
            }),
            graceMs,
          );
        }
        const job = slot.job;
        slot.job = null;
        job?.reject(new PipelineError("closed", "the model pool was closed", 500));
        slot.worker.ref();
        slot.worker.postMessage({ op: "close" });
        await within(slot.exited, 5_000);
        await slot.worker.terminate();
      }),
    );
  }
}
