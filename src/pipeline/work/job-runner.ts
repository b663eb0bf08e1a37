// The one durable job runner, for every kind (job-kinds.ts). Jobs live in SQLite
// (store/job-rows.ts); the runner takes queued jobs oldest first, each lane (autoencoder jobs,
// generations) up to its own concurrency, and runs each with its kind's run function, which
// records items and progress through the runner (kind-contract.ts RunContext). Every change the
// runner makes is announced to the job's subscribers, so that waiting requests (Prefer: wait)
// and event streams (/events) are woken by it rather than polling. Cancel marks the job canceled
// and aborts its run (which checks before every model call). Every output is written atomically
// (datadir.ts) and its sha256 recorded with its item.
// On start-up, jobs left "running" by a crash are queued again (items that succeeded and whose
// outputs are there are kept) or, when their inputs are gone, finished with the reason; a job
// that was interrupted MAX_ATTEMPTS times fails with "interrupted". stop() aborts what runs and
// leaves it "running", for the next start to recover.

import { existsSync } from "node:fs";
import { mkdir, readdir, rm } from "node:fs/promises";
import { errorInfo } from "../../app-error.ts";
import type { Db } from "../../store/db.ts";
import {
  claimNextJob,
  getJob,
  type ItemValues,
  type JobWithItems,
  jobsWithStatus,
  setItem,
  setJob,
  cancelJob as storeCancelJob,
} from "../../store/job-rows.ts";
import { DenoiserBatcher } from "../generate/batcher.ts";
import { PipelineError } from "../pipeline-error.ts";
import type { ModelRuntime } from "../runtime.ts";
import { generationsDir, outputsDir, removeTempFiles, uploadsDir } from "./datadir.ts";
import { JOB_KINDS, kindNamed } from "./job-kinds.ts";
import type { JobKind, RunContext } from "./kind-contract.ts";

/** Work that crashed the server this many times is failed rather than resumed again. */
export const MAX_ATTEMPTS = 3;

export interface JobRunnerOptions {
  db: Db;
  runtime: ModelRuntime;
  dataDir: string;
  /** Jobs run at the same time, per lane: autoencoder jobs (DIFFUSABLE_JOB_CONCURRENCY) and
   * generations (DIFFUSABLE_GENERATION_CONCURRENCY, sharing denoiser calls). */
  concurrency: { autoencoder: number; generation: number };
  /** Videos per shared denoiser call (batcher.ts; default 8). Ignored when `batcher` is given. */
  maxBatch?: number;
  /** A batcher to share with other callers; default a new one. */
  batcher?: DenoiserBatcher;
  log?: (line: string) => void;
}

export interface RecoveryReport {
  resumed: string[];
  failed: string[];
  removedTemp: number;
  removedUploads: number;
}

const isActive = (status: string) => status === "queued" || status === "running";

export class JobRunner {
  /** Where the running generations' denoiser calls are shared. */
  readonly batcher: DenoiserBatcher;
  readonly #db: Db;
  readonly #runtime: ModelRuntime;
  readonly #dataDir: string;
  readonly #log: (line: string) => void;
  readonly #lanes: Map<JobKind["lane"], { limit: number; kinds: string[]; running: number }>;
  readonly #active = new Map<string, { controller: AbortController; done: Promise<void> }>();
  readonly #listeners = new Map<string, Set<() => void>>();
  #started = false;
  #stopping = false;
  #idleWaiters: (() => void)[] = [];

  constructor(options: JobRunnerOptions) {
    this.#db = options.db;
    this.#runtime = options.runtime;
    this.#dataDir = options.dataDir;
    this.#log = options.log ?? (() => {});
    this.batcher =
      options.batcher ??
      new DenoiserBatcher(options.runtime, {
        ...(options.maxBatch !== undefined ? { maxBatch: options.maxBatch } : {}),
      });
    this.#lanes = new Map();
    for (const kind of JOB_KINDS) {
      const lane = this.#lanes.get(kind.lane) ?? {
        limit: Math.max(1, options.concurrency[kind.lane]),
        kinds: [],
        running: 0,
      };
      lane.kinds.push(kind.name);
      this.#lanes.set(kind.lane, lane);
    }
  }

  get dataDir(): string {
    return this.#dataDir;
  }

  /** Jobs running now. */
  get running(): number {
    return this.#active.size;
  }

  /** Recovers what a crash left behind, then starts taking queued jobs. */
  async start(): Promise<RecoveryReport> {
    const report = await this.recover();
    this.#started = true;
    this.notify();
    return report;
  }

  /** Calls `listener` after every change the runner makes to this job (progress, items, status). */
  subscribe(jobId: string, listener: () => void): () => void {
    let set = this.#listeners.get(jobId);
    if (!set) {
      set = new Set();
      this.#listeners.set(jobId, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.#listeners.get(jobId) === set) this.#listeners.delete(jobId);
    };
  }

  #changed(jobId: string): void {
    for (const listener of [...(this.#listeners.get(jobId) ?? [])]) listener();
  }

  /** Call after queuing work: starts it if its lane has a free slot. */
  notify(): void {
    if (!this.#started || this.#stopping) return;
    for (const lane of this.#lanes.values()) {
      while (lane.running < lane.limit) {
        const next = claimNextJob(this.#db, lane.kinds);
        if (!next) break;
        const id = next.job.id;
        const controller = new AbortController();
        const entry = { controller, done: Promise.resolve() };
        this.#active.set(id, entry);
        lane.running++;
        this.#changed(id);
        entry.done = this.#run(next, controller.signal)
          .catch((err) => this.#log(`jobs: ${id}: ${(err as Error).stack ?? err}`))
          .finally(() => {
            this.#active.delete(id);
            lane.running--;
            this.#changed(id);
            this.notify();
            if (this.#active.size === 0) {
              for (const resolve of this.#idleWaiters.splice(0)) resolve();
            }
          });
      }
    }
  }

  /** Cancels a queued or running job; false if it had already finished or does not exist. */
  cancel(jobId: string): boolean {
    const canceled = storeCancelJob(this.#db, jobId);
    if (canceled) {
      this.#active.get(jobId)?.controller.abort(new PipelineError("canceled", "canceled", 400));
      if (!this.#active.has(jobId)) {
        void rm(uploadsDir(this.#dataDir, jobId), { recursive: true, force: true });
      }
      this.#changed(jobId);
    }
    return canceled;
  }

  /** Resolves when nothing is running (queued work may remain only if stopping). */
  idle(): Promise<void> {
    if (this.#active.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Stops taking work and aborts what runs; it stays "running" in the db and resumes on start. */
  async stop(): Promise<void> {
    this.#stopping = true;
    for (const { controller } of this.#active.values()) controller.abort(new Error("stopping"));
    await Promise.all([...this.#active.values()].map((a) => a.done));
  }

  /** Re-queues or fails jobs left running, and deletes temporary files. Call before start. */
  async recover(): Promise<RecoveryReport> {
    const report: RecoveryReport = { resumed: [], failed: [], removedTemp: 0, removedUploads: 0 };
    report.removedTemp =
      (await removeTempFiles(outputsDir(this.#dataDir))) +
      (await removeTempFiles(uploadsDir(this.#dataDir))) +
      (await removeTempFiles(generationsDir(this.#dataDir)));
    // Upload folders of jobs that never made it into the database (a crash between the upload
    // and the insert) or that have finished.
    for (const name of await readdir(uploadsDir(this.#dataDir)).catch(() => [] as string[])) {
      const job = getJob(this.#db, name);
      if (!job || !isActive(job.job.status)) {
        await rm(uploadsDir(this.#dataDir, name), { recursive: true, force: true });
        report.removedUploads++;
      }
    }
    for (const { job, items } of jobsWithStatus(this.#db, "running")) {
      if (job.attempts >= MAX_ATTEMPTS) {
        for (const item of items) {
          if (isActive(item.status)) {
            setItem(this.#db, job.id, item.index, {
              status: "failed",
              errorCode: "interrupted",
              errorMessage: `the server stopped during this job ${job.attempts} times`,
              finishedAt: new Date(),
            });
          }
        }
        await this.#finish(job.id, {
          code: "interrupted",
          message: `the server stopped during this job ${job.attempts} times; not resuming it again`,
        });
        report.failed.push(job.id);
        continue;
      }
      let pending = 0;
      for (const item of items) {
        const outputsGone =
          item.status === "succeeded" &&
          Object.values(item.outputs ?? {}).some((p) => !existsSync(p));
        if (!isActive(item.status) && !outputsGone) continue;
        if (item.inputPath !== null && !existsSync(item.inputPath)) {
          setItem(this.#db, job.id, item.index, {
            status: "failed",
            errorCode: "input_missing",
            errorMessage: `the input of ${item.sourceName} is gone from the data dir; cannot resume`,
            outputs: null,
            outputSha256: null,
            finishedAt: new Date(),
          });
        } else {
          setItem(this.#db, job.id, item.index, {
            status: "queued",
            outputs: null,
            outputSha256: null,
          });
          pending++;
        }
      }
      if (pending > 0) {
        setJob(this.#db, job.id, { status: "queued", step: 0 });
        report.resumed.push(job.id);
      } else {
        const status = await this.#finish(job.id, {
          code: "interrupted",
          message: "the server stopped during this job and its inputs are gone",
        });
        if (status === "failed") report.failed.push(job.id);
        else report.resumed.push(job.id);
      }
    }
    for (const line of [
      report.resumed.length ? `jobs: resuming ${report.resumed.join(", ")}` : "",
      report.failed.length ? `jobs: failed after a crash: ${report.failed.join(", ")}` : "",
      report.removedTemp ? `jobs: removed ${report.removedTemp} temporary file(s)` : "",
    ]) {
      if (line) this.#log(line);
    }
    return report;
  }

  async #run({ job, items }: JobWithItems, signal: AbortSignal): Promise<void> {
    const kind = kindNamed(job.kind);
    const db = this.#db;
    const outDir = outputsDir(this.#dataDir, job.id);
    await mkdir(outDir, { recursive: true });
    const runner = this;
    let lastWrite = 0;
    const setItemOf = (index: number, values: ItemValues) => {
      setItem(db, job.id, index, values);
      this.#changed(job.id);
    };
    const ctx: RunContext = {
      runtime: this.#runtime,
      dataDir: this.#dataDir,
      batcher: this.batcher,
      job,
      items,
      signal,
      outDir,
      inputDir: uploadsDir(this.#dataDir, job.id),
      get stopping() {
        return runner.#stopping;
      },
      progress: (fraction, step) => {
        // Every sampler step is written (a generation's step count is part of its view); item
        // progress at most every 250 ms.
        const now = Date.now();
        if (step === undefined && now - lastWrite < 250) return;
        lastWrite = now;
        setJob(db, job.id, {
          progress: Math.min(1, Math.max(0, fraction)),
          ...(step !== undefined ? { step } : {}),
        });
        this.#changed(job.id);
      },
      itemRunning: (index) => setItemOf(index, { status: "running", startedAt: new Date() }),
      itemSucceeded: (index, result) =>
        setItemOf(index, {
          status: "succeeded",
          outputs: result.outputs,
          outputSha256: result.sha256,
          metadata: result.metadata,
          errorCode: null,
          errorMessage: null,
          finishedAt: new Date(),
        }),
      itemFailed: (index, err) => {
        const canceled = signal.aborted;
        const { code, message } = canceled
          ? { code: "canceled", message: "canceled by request" }
          : errorInfo(err);
        const item = items.find((i) => i.index === index);
        setItemOf(index, {
          status: canceled ? "canceled" : "failed",
          errorCode: code,
          // The tools name the stored input by its path; the user knows it by its name.
          errorMessage:
            item?.inputPath && item.sourceName
              ? message.replaceAll(item.inputPath, item.sourceName)
              : message,
          finishedAt: new Date(),
        });
      },
    };
    await kind.run(ctx);
    if (this.#stopping) return;
    if (getJob(db, job.id)?.job.status !== "running") {
      // Canceled meanwhile: its inputs go now that nothing reads them.
      await rm(ctx.inputDir, { recursive: true, force: true });
      return;
    }
    await this.#finish(job.id);
  }

  /** Sets the job's final status from its items: succeeded when at least one did. */
  async #finish(
    jobId: string,
    fallback?: { code: string; message: string },
  ): Promise<"succeeded" | "failed"> {
    const items = getJob(this.#db, jobId)?.items ?? [];
    const ok = items.filter((i) => i.status === "succeeded").length;
    const failedItems = items.filter((i) => i.status === "failed");
    const status = ok > 0 ? "succeeded" : "failed";
    const first = failedItems[0];
    // One error for all (a generation's videos fail together): that error.
    const same = failedItems.every(
      (i) => i.errorCode === first?.errorCode && i.errorMessage === first?.errorMessage,
    );
    const error =
      status === "succeeded"
        ? { code: null, message: null }
        : first
          ? {
              code: first.errorCode ?? fallback?.code ?? "failed",
              message:
                items.length === 1 || same
                  ? (first.errorMessage ?? "failed")
                  : `all ${items.length} items failed; item 0: ${first.errorMessage ?? first.errorCode}`,
            }
          : { code: fallback?.code ?? "failed", message: fallback?.message ?? "no items" };
    setJob(this.#db, jobId, {
      status,
      progress: 1,
      errorCode: error.code,
      errorMessage: error.message,
      finishedAt: new Date(),
    });
    this.#changed(jobId);
    await rm(uploadsDir(this.#dataDir, jobId), { recursive: true, force: true });
    return status;
  }
}
