// The work queue shared by several service processes over PostgreSQL (issue 22, part 3): the only
// module that imports pg-boss.
//
// Why pg-boss (10.x): a maintained PostgreSQL job queue (SKIP LOCKED fetch, retries, its own
// schema and migrations) whose 10.x line supports Node 20; 11.x and graphile-worker 0.18 need
// Node 22. graphile-worker 0.16 would also run on Node 20; pg-boss can fail a job by id, which
// is what the lease sweeper below needs.
//
// What pg-boss does not have is a heartbeat: a job whose process was killed stays `active` until
// its expiry, and a video job's expiry must be long. So each process keeps a row in
// `diffusable_workers` fresh (`seen_at`, PostgreSQL's clock) and records in `diffusable_leases`
// which queue jobs it holds; every process sweeps: the leases of a worker not seen for
// `deadAfterMs` are failed through pg-boss, which puts them back in the queue until the job's
// tries are spent (the service's 3-try rule: retryLimit 2). The queue carries only the job's id
// and kind: the job itself, its items and outputs live in the jobs table and the data folder.
// A job whose last try was spent by a dead worker is handed to `onGivenUp`, so that its row does
// not stay "running" for ever. The service runner (pipeline/work/job-runner.ts) has one queue per
// lane (autoencoder jobs, generations), each worked by as many pg-boss workers as the lane runs
// jobs at once.

import { randomUUID } from "node:crypto";
import PgBoss from "pg-boss";
import type { SqlExecutor } from "./pg-store.ts";

/** What a queue entry says: which job of which kind to run. */
export interface QueuedWork {
  jobId: string;
  kind: string;
}

/** A queue entry as a worker receives it: `attempt` counts from 1. */
export interface TakenWork extends QueuedWork {
  attempt: number;
}

export interface PgWorkQueueOptions {
  /** How often this process proves it is alive (ms). */
  heartbeatMs?: number;
  /** A worker not seen for this long is dead and its jobs go back to the queue (ms). */
  deadAfterMs?: number;
  /** Tries per job, the first included. */
  tries?: number;
  /** How often an idle worker asks for work (ms; pg-boss polls, at least every 500 ms). */
  pollMs?: number;
  /** Names this process in the workers table (default: a random id). */
  workerId?: string;
  /** The queue's name, or the names of several (default "diffusable-jobs"; tests give each
   * their own); the first is the one enqueue() and work() use when not told another. */
  queue?: string | readonly string[];
  /** Called when a dead worker's job had no try left: pg-boss marked it failed. */
  onGivenUp?: (work: QueuedWork) => void | Promise<void>;
}

// A safety net only: the sweeper frees a dead worker's jobs long before this.
const EXPIRE_S = 4 * 3600;

export class PgWorkQueue {
  readonly workerId: string;
  readonly queue: string;
  readonly queues: readonly string[];
  private readonly boss: PgBoss;
  private readonly opts: Required<Omit<PgWorkQueueOptions, "workerId" | "queue" | "onGivenUp">>;
  /** See PgWorkQueueOptions.onGivenUp; the service runner sets it (job-runner.ts). */
  onGivenUp: PgWorkQueueOptions["onGivenUp"];
  private readonly workers: string[] = [];
  private timer: NodeJS.Timeout | null = null;
  private beating: Promise<void> = Promise.resolve();
  private closed = false;
  private readonly inHand = new Set<Promise<void>>();

  private constructor(boss: PgBoss, workerId: string, opts: PgWorkQueueOptions) {
    this.boss = boss;
    this.workerId = workerId;
    const queues = opts.queue ?? "diffusable-jobs";
    this.queues = typeof queues === "string" ? [queues] : [...queues];
    if (this.queues.length === 0) throw new Error("work queue: no queue named");
    this.queue = this.queues[0] as string;
    this.onGivenUp = opts.onGivenUp;
    this.opts = {
      heartbeatMs: opts.heartbeatMs ?? 5000,
      deadAfterMs: opts.deadAfterMs ?? 30_000,
      tries: opts.tries ?? 3,
      pollMs: Math.max(500, opts.pollMs ?? 1000),
    };
  }

  /** Connects, creates pg-boss's schema and ours when missing, and starts the heartbeat. */
  static async open(url: string, opts: PgWorkQueueOptions = {}): Promise<PgWorkQueue> {
    // supervise: pg-boss's own maintenance (expiry, archiving) runs in every process; it is
    // idempotent and takes an advisory lock.
    const boss = new PgBoss({ connectionString: url, max: 4, supervise: true, schedule: false });
    const queue = new PgWorkQueue(boss, opts.workerId ?? randomUUID(), opts);
    boss.on("error", (err) => {
      if (!queue.closed) console.error(`work queue: ${err.message}`);
    });
    await boss.start();
    await queue.sql(
      `CREATE TABLE IF NOT EXISTS diffusable_workers (
         id text PRIMARY KEY, seen_at timestamptz NOT NULL DEFAULT now());
       CREATE TABLE IF NOT EXISTS diffusable_leases (
         queue_id uuid PRIMARY KEY, queue text NOT NULL, worker_id text NOT NULL,
         job_id text NOT NULL,
         taken_at timestamptz NOT NULL DEFAULT now())`,
    );
    for (const name of queue.queues) {
      if (await boss.getQueue(name)) continue;
      try {
        await boss.createQueue(name, {
          name,
          retryLimit: queue.opts.tries - 1,
          retryDelay: 0,
          expireInSeconds: EXPIRE_S,
        });
      } catch (err) {
        // Another process created it between our look and our create.
        if (!(await boss.getQueue(name))) throw err;
      }
    }
    await queue.beat();
    queue.timer = setInterval(() => {
      queue.beating = queue.beat().catch((err) => {
        if (!queue.closed) console.error(`work queue: heartbeat: ${err.message}`);
      });
    }, queue.opts.heartbeatMs);
    queue.timer.unref();
    return queue;
  }

  private async sql(
    text: string,
    values: unknown[] = [],
  ): Promise<{ rows: Record<string, unknown>[] }> {
    // pg-boss's own pool: one pool per process for the queue and its bookkeeping.
    return await this.boss.getDb().executeSql(text, values);
  }

  /** Puts a job in a queue (default the first); `db`: inside that transaction (the one that
   * inserts the job's row, pg-store.ts). */
  async enqueue(
    work: QueuedWork,
    opts: { queue?: string; db?: SqlExecutor } = {},
  ): Promise<string> {
    const queue = opts.queue ?? this.queue;
    const id = await this.boss.send(queue, { ...work }, opts.db ? { db: opts.db } : {});
    if (!id) throw new Error(`work queue: ${work.jobId} was not queued`);
    return id;
  }

  /** Wakes this process's idle workers now rather than at their next poll (after a job was
   * queued here). */
  notify(): void {
    for (const id of this.workers) this.boss.notifyWorker(id);
  }

  /** Takes work from a queue (default the first) until close(): `concurrency` jobs at a time,
   * each in its own pg-boss worker. `run` ends normally when the job is done (pg-boss completes
   * it), or throws to spend one of its tries. */
  async work(
    run: (work: TakenWork) => Promise<void>,
    opts: { queue?: string; concurrency?: number } = {},
  ): Promise<void> {
    for (let i = 0; i < Math.max(1, opts.concurrency ?? 1); i++) {
      this.workers.push(await this.workOne(opts.queue ?? this.queue, run));
    }
  }

  private async workOne(queue: string, run: (work: TakenWork) => Promise<void>): Promise<string> {
    const options = {
      includeMetadata: true as const,
      batchSize: 1,
      pollingIntervalSeconds: this.opts.pollMs / 1000,
    };
    return await this.boss.work<QueuedWork>(queue, options, async ([job]) => {
      if (!job) return;
      await this.sql(
        `INSERT INTO diffusable_leases (queue_id, queue, worker_id, job_id) VALUES ($1, $2, $3, $4)
         ON CONFLICT (queue_id) DO UPDATE SET worker_id = $3, taken_at = now()`,
        [job.id, queue, this.workerId, job.data.jobId],
      );
      const running = run({ ...job.data, attempt: job.retryCount + 1 });
      const settled = running.then(
        () => {},
        () => {},
      );
      this.inHand.add(settled);
      try {
        await running;
      } finally {
        this.inHand.delete(settled);
        await this.sql("DELETE FROM diffusable_leases WHERE queue_id = $1 AND worker_id = $2", [
          job.id,
          this.workerId,
        ]);
      }
    });
  }

  /** Proves this worker alive, and fails back into the queue the jobs of workers that are not. */
  private async beat(): Promise<void> {
    await this.sql(
      "INSERT INTO diffusable_workers (id) VALUES ($1) ON CONFLICT (id) DO UPDATE SET seen_at = now()",
      [this.workerId],
    );
    const dead = await this.sql(
      `DELETE FROM diffusable_workers WHERE seen_at < now() - make_interval(secs => $1)
       RETURNING id`,
      [this.opts.deadAfterMs / 1000],
    );
    const orphans = await this.sql(
      `DELETE FROM diffusable_leases l WHERE NOT EXISTS
         (SELECT 1 FROM diffusable_workers w WHERE w.id = l.worker_id)
       RETURNING queue_id, queue`,
    );
    if (orphans.rows.length === 0) return;
    const ids = orphans.rows.map((r) => String(r.queue_id));
    for (const row of orphans.rows) {
      const [queue, id] = [String(row.queue), String(row.queue_id)];
      await this.boss.fail(queue, id, { error: "the process running it stopped answering" });
      const job = await this.boss.getJobById<QueuedWork>(queue, id);
      if (job?.state === "failed" && this.onGivenUp) await this.onGivenUp(job.data);
    }
    const who = dead.rows.map((r) => String(r.id)).join(", ") || "gone";
    console.error(
      `work queue: ${ids.length} job(s) of dead worker(s) ${who} put back in the queue`,
    );
  }

  /** Counts of the queue's entries by state (the tests read them). */
  async counts(): Promise<Record<string, number>> {
    const res = await this.sql(
      `SELECT state, count(*)::int AS n FROM pgboss.job WHERE name = ANY($1) GROUP BY state`,
      [this.queues],
    );
    return Object.fromEntries(res.rows.map((r) => [String(r.state), Number(r.n)]));
  }

  /** Stops taking new work (the jobs in hand go on). */
  async stopTaking(): Promise<void> {
    for (const name of this.queues) await this.boss.offWork(name);
  }

  /** Stops taking work, waits for the jobs in hand (the heartbeat goes on meanwhile, so no other
   * process takes them), then leaves the workers table and closes the connections. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.stopTaking();
    await Promise.all([...this.inHand]);
    if (this.timer) clearInterval(this.timer);
    await this.beating;
    this.closed = true;
    await this.sql("DELETE FROM diffusable_workers WHERE id = $1", [this.workerId]).catch(() => {});
    await this.boss.stop({ graceful: true, wait: true, timeout: 30_000 });
  }
}
