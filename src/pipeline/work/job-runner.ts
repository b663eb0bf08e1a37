// The one durable job runner, for every kind (job-kinds.ts). Jobs live in the store
// (store/store.ts: the SQLite file, or PostgreSQL). Without PostgreSQL the runner takes queued
// jobs from the store oldest first; with it, from the shared work queue (store/pg-work-queue.ts,
// one pg-boss queue per lane), where every service process is a worker. Each lane (autoencoder
// jobs, generations) runs up to its own concurrency, each job with its kind's run function, which
// records items and progress through the runner (kind-contract.ts RunContext). Every change the
// runner makes is announced to the job's subscribers, so that waiting requests (Prefer: wait)
// and event streams (/events) are woken by it rather than polling. Cancel marks the job canceled
// and aborts its run (which checks before every model call). Every output is written atomically
// (datadir.ts) and its sha256 recorded with its item.
// SQLite: on start-up, jobs left "running" by a crash are queued again (items that succeeded and
// whose outputs are there are kept) or, when their inputs are gone, finished with the reason; a
// job that was interrupted MAX_ATTEMPTS times fails with "interrupted". stop() aborts what runs
// and leaves it "running", for the next start to recover.
// PostgreSQL: a process that dies holding a job has it put back in the queue by another's lease
// sweeper; whoever takes it next resumes it the same way (its finished items kept); the queue
// gives a job MAX_ATTEMPTS tries and the runner fails it "interrupted" when they are spent. A
// cancel or a wait on another process is seen by polling the job's row.

import { existsSync } from "node:fs";
import { mkdir, readdir, rm } from "node:fs/promises";
import { errorInfo } from "../../app-error.ts";
import type { PgWorkQueue, TakenWork } from "../../store/pg-work-queue.ts";
import type { ItemValues, JobItemRow, JobWithItems, Store } from "../../store/store.ts";
import { DenoiserBatcher } from "../generate/batcher.ts";
import { PipelineError } from "../pipeline-error.ts";
import type { ModelRuntime } from "../runtime.ts";
import { generationsDir, outputsDir, removeTempFiles, uploadsDir } from "./datadir.ts";
import { JOB_KINDS, kindNamed } from "./job-kinds.ts";
import type { JobKind, RunContext } from "./kind-contract.ts";

/** Work that crashed the server this many times is failed rather than resumed again. */
export const MAX_ATTEMPTS = 3;

/** The work queue of a lane (PostgreSQL). */
export const laneQueue = (lane: JobKind["lane"]) => `diffusable-${lane}`;
export const LANE_QUEUES = [...new Set(JOB_KINDS.map((k) => laneQueue(k.lane)))];

/** How often a process looks at the rows of the jobs it runs (canceled elsewhere?) and wakes
 * the waiters of jobs another process runs, with PostgreSQL. */
const POLL_MS = 500;

export interface JobRunnerOptions {
  store: Store;
  /** With PostgreSQL: the shared work queue, whose queues are LANE_QUEUES; absent: jobs are
   * taken from the store. */
  queue?: PgWorkQueue | null;
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
  readonly #store: Store;
  readonly #queue: PgWorkQueue | null;
  readonly #runtime: ModelRuntime;
  readonly #dataDir: string;
  readonly #log: (line: string) => void;
  readonly #lanes: Map<JobKind["lane"], { limit: number; kinds: string[]; running: number }>;
  readonly #active = new Map<string, { controller: AbortController; done: Promise<void> }>();
  readonly #listeners = new Map<string, Set<() => void>>();
  #started = false;
  #stopping = false;
  #idleWaiters: (() => void)[] = [];
  #pumping = false;
  #pumpAgain = false;
  #poller: NodeJS.Timeout | null = null;

  constructor(options: JobRunnerOptions) {
    this.#store = options.store;
    this.#queue = options.queue ?? null;
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

  /** Recovers what a crash left behind (SQLite), then starts taking queued jobs: from the store,
   * or (PostgreSQL) from the work queue, each lane's jobs with as many workers as it runs. */
  async start(): Promise<RecoveryReport> {
    const queue = this.#queue;
    if (!queue) {
      const report = await this.recover();
      this.#started = true;
      this.notify();
      return report;
    }
    queue.onGivenUp = (work) => this.giveUp(work.jobId);
    this.#started = true;
    for (const [lane, { limit }] of this.#lanes) {
      await queue.work((work) => this.#take(lane, work), {
        queue: laneQueue(lane),
        concurrency: limit,
      });
    }
    this.#poller = setInterval(() => {
      this.#poll().catch((err) => this.#log(`jobs: ${(err as Error).message}`));
    }, POLL_MS);
    this.#poller.unref();
    return { resumed: [], failed: [], removedTemp: 0, removedUploads: 0 };
  }

  /** Calls `listener` after every change the runner makes to this job (progress, items, status);
   * with PostgreSQL also every POLL_MS while another process may be running it. */
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

  /** PostgreSQL: aborts the jobs this process runs that were canceled (or deleted) through
   * another, and wakes the waiters of the jobs it does not run. */
  async #poll(): Promise<void> {
    const mine = [...this.#active.keys()];
    const statuses = await this.#store.statusesOf(mine);
    for (const id of mine) {
      const status = statuses.get(id);
      if (status === "running" || status === "queued") continue;
      this.#active.get(id)?.controller.abort(new PipelineError("canceled", "canceled", 400));
    }
    for (const id of this.#listeners.keys()) if (!this.#active.has(id)) this.#changed(id);
  }

  /** Call after queuing work: starts it if its lane has a free slot (PostgreSQL: wakes this
   * process's idle workers). */
  notify(): void {
    if (!this.#started || this.#stopping) return;
    if (this.#queue) {
      this.#queue.notify();
      return;
    }
    if (this.#pumping) {
      this.#pumpAgain = true;
      return;
    }
    this.#pumping = true;
    this.#pump()
      .catch((err) => this.#log(`jobs: ${(err as Error).stack ?? err}`))
      .finally(() => {
        this.#pumping = false;
        if (this.#pumpAgain) {
          this.#pumpAgain = false;
          this.notify();
        }
        this.#checkIdle();
      });
  }

  /** SQLite: claims queued jobs oldest first while their lanes have room. */
  async #pump(): Promise<void> {
    for (const lane of this.#lanes.values()) {
      while (lane.running < lane.limit && !this.#stopping) {
        const next = await this.#store.claimNextJob(lane.kinds);
        if (!next) break;
        this.#launch(lane, next);
      }
    }
  }

  /** Runs a claimed job in its lane; resolves when it is over (or stopped). */
  #launch(lane: { running: number }, next: JobWithItems): Promise<void> {
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
        this.#checkIdle();
      });
    return entry.done;
  }

  /** PostgreSQL: one job from the work queue, taken by one of this lane's workers. Returns when
   * it is over (pg-boss completes the queue entry); throws when this process stops before
   * (the entry goes back to the queue, spending a try). */
  async #take(laneName: JobKind["lane"], work: TakenWork): Promise<void> {
    const lane = this.#lanes.get(laneName);
    if (!lane || this.#stopping) throw new Error("stopping");
    let claimed = await this.#store.claimJob(work.jobId);
    if (!claimed) {
      // Canceled or deleted before it ran: its inputs go (cancel leaves them to us, below).
      await rm(uploadsDir(this.#dataDir, work.jobId), { recursive: true, force: true });
      return;
    }
    if (claimed.job.attempts > 1) {
      // A process died (or stopped) running it: resume it as a restart would.
      if (claimed.job.attempts > MAX_ATTEMPTS) {
        await this.giveUp(work.jobId);
        return;
      }
      if ((await this.#resume(claimed)) !== "queued") return;
      claimed = await this.#store.getJob(work.jobId);
      if (claimed?.job.status !== "running") return;
      this.#log(`jobs: ${work.jobId}: resuming (try ${claimed.job.attempts})`);
    }
    await this.#launch(lane, claimed);
    if (this.#stopping) throw new Error(`${work.jobId}: this process stopped during the job`);
  }

  /** Fails a job whose tries were all spent by processes that died running it. */
  async giveUp(jobId: string): Promise<void> {
    const found = await this.#store.getJob(jobId);
    if (!found || !isActive(found.job.status)) return;
    for (const item of found.items) {
      if (isActive(item.status)) {
        await this.#store.setItem(jobId, item.index, {
          status: "failed",
          errorCode: "interrupted",
          errorMessage: `the server stopped during this job ${found.job.attempts} times`,
          finishedAt: new Date(),
        });
      }
    }
    await this.#finish(jobId, {
      code: "interrupted",
      message: `the server stopped during this job ${found.job.attempts} times; not resuming it again`,
    });
    this.#log(`jobs: ${jobId}: failed after ${found.job.attempts} interrupted tries`);
  }

  /** Cancels a queued or running job; false if it had already finished or does not exist. */
  async cancel(jobId: string): Promise<boolean> {
    const canceled = await this.#store.cancelJob(jobId);
    if (canceled) {
      this.#active.get(jobId)?.controller.abort(new PipelineError("canceled", "canceled", 400));
      // With the work queue another process may be running it: whoever takes or runs it
      // removes its inputs once nothing reads them.
      if (!this.#active.has(jobId) && !this.#queue) {
        void rm(uploadsDir(this.#dataDir, jobId), { recursive: true, force: true });
      }
      this.#changed(jobId);
    }
    return canceled;
  }

  /** Resolves when nothing is running (queued work may remain only if stopping; with
   * PostgreSQL, only this process's jobs count). */
  idle(): Promise<void> {
    if (this.#active.size === 0 && !this.#pumping) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #checkIdle(): void {
    if (this.#active.size > 0 || this.#pumping) return;
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }

  /** Stops taking work and aborts what runs; it stays "running" in the db and resumes on start
   * (PostgreSQL: goes back to the queue, for this process or another). */
  async stop(): Promise<void> {
    this.#stopping = true;
    if (this.#poller) clearInterval(this.#poller);
    await this.#queue?.stopTaking();
    for (const { controller } of this.#active.values()) controller.abort(new Error("stopping"));
    await Promise.all([...this.#active.values()].map((a) => a.done));
  }

  /** Re-queues or fails jobs left running, and deletes temporary files. Call before start.
   * SQLite only: with PostgreSQL other processes run jobs and write files in the same places. */
  async recover(): Promise<RecoveryReport> {
    const report: RecoveryReport = { resumed: [], failed: [], removedTemp: 0, removedUploads: 0 };
    if (this.#queue) return report;
    report.removedTemp =
      (await removeTempFiles(outputsDir(this.#dataDir))) +
      (await removeTempFiles(uploadsDir(this.#dataDir))) +
      (await removeTempFiles(generationsDir(this.#dataDir)));
    // Upload folders of jobs that never made it into the database (a crash between the upload
    // and the insert) or that have finished.
    for (const name of await readdir(uploadsDir(this.#dataDir)).catch(() => [] as string[])) {
      const job = await this.#store.getJob(name);
      if (!job || !isActive(job.job.status)) {
        await rm(uploadsDir(this.#dataDir, name), { recursive: true, force: true });
        report.removedUploads++;
      }
    }
    for (const found of await this.#store.jobsWithStatus("running")) {
      const { job } = found;
      if (job.attempts >= MAX_ATTEMPTS) {
        await this.giveUp(job.id);
        report.failed.push(job.id);
        continue;
      }
      const outcome = await this.#resume(found);
      if (outcome === "queued") {
        await this.#store.setJob(job.id, { status: "queued", step: 0 });
        report.resumed.push(job.id);
      } else if (outcome === "failed") report.failed.push(job.id);
      else report.resumed.push(job.id);
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

  /** Readies an interrupted job to run again: its unfinished items (and finished ones whose
   * outputs are gone) queued again, those whose inputs are gone failed. "queued" when some
   * remain to run; else the job is finished now ("succeeded"/"failed" as its items say). */
  async #resume({ job, items }: JobWithItems): Promise<"queued" | "succeeded" | "failed"> {
    let pending = 0;
    for (const item of items as JobItemRow[]) {
      const outputsGone =
        item.status === "succeeded" &&
        Object.values(item.outputs ?? {}).some((p) => !existsSync(p));
      if (!isActive(item.status) && !outputsGone) continue;
      if (item.inputPath !== null && !existsSync(item.inputPath)) {
        await this.#store.setItem(job.id, item.index, {
          status: "failed",
          errorCode: "input_missing",
          errorMessage: `the input of ${item.sourceName} is gone from the data dir; cannot resume`,
          outputs: null,
          outputSha256: null,
          finishedAt: new Date(),
        });
      } else {
        await this.#store.setItem(job.id, item.index, {
          status: "queued",
          outputs: null,
          outputSha256: null,
        });
        pending++;
      }
    }
    if (pending > 0) return "queued";
    return await this.#finish(job.id, {
      code: "interrupted",
      message: "the server stopped during this job and its inputs are gone",
    });
  }

  async #run({ job, items }: JobWithItems, signal: AbortSignal): Promise<void> {
    const kind = kindNamed(job.kind);
    const store = this.#store;
    const outDir = outputsDir(this.#dataDir, job.id);
    await mkdir(outDir, { recursive: true });
    const runner = this;
    let lastWrite = 0;
    // The run function's writes, in the order it makes them; each announced once it is stored.
    let writes = Promise.resolve();
    const write = (f: () => Promise<void>) => {
      writes = writes
        .then(f)
        .then(() => this.#changed(job.id))
        .catch((err) => this.#log(`jobs: ${job.id}: cannot record: ${(err as Error).message}`));
    };
    const setItemOf = (index: number, values: ItemValues) =>
      write(() => store.setItem(job.id, index, values));
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
        write(() =>
          store.setJob(job.id, {
            progress: Math.min(1, Math.max(0, fraction)),
            ...(step !== undefined ? { step } : {}),
          }),
        );
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
    try {
      await kind.run(ctx);
    } finally {
      await writes;
    }
    if (this.#stopping) return;
    if ((await store.getJob(job.id))?.job.status !== "running") {
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
    const items = (await this.#store.getJob(jobId))?.items ?? [];
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
    await this.#store.setJob(jobId, {
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
