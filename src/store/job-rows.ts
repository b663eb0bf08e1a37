// Job rows, for every kind of job (encodings, decodings, reconstructions, generations): insert a
// job with its items in one transaction, read it back, find it by Idempotency-Key, claim the
// oldest queued one, record item and job outcomes, list, count, delete. All synchronous
// (better-sqlite3); the runner is pipeline/work/job-runner.ts, the kinds pipeline/work/job-kinds.ts.

import { randomBytes } from "node:crypto";
import { and, asc, desc, eq, inArray, lt, sql } from "drizzle-orm";
import type { Db } from "./db.ts";
import {
  ACTIVE_STATUSES,
  type ItemStatus,
  type JobItemRow,
  type JobRow,
  type JobStatus,
  jobItems,
  jobs,
  TERMINAL_STATUSES,
} from "./schema.ts";

/** A fresh job id: the kind's prefix ("enc", "gen", ...), "_", 12 random url-safe characters. */
export function newJobId(prefix: string): string {
  return `${prefix}_${randomBytes(9).toString("base64url")}`;
}

export interface NewItem {
  sourceName?: string | null;
  inputPath?: string | null;
  inputBytes?: number;
}

export interface NewJob {
  id: string;
  kind: string;
  keyId: string | null;
  model: string;
  options: Record<string, unknown>;
  items: NewItem[];
  /** Steps of the whole job (a generation's sampler steps); absent: the items are the steps. */
  steps?: number | null;
  idempotencyKey?: string | null;
  requestSha256?: string | null;
}

export interface JobWithItems {
  job: JobRow;
  items: JobItemRow[];
}

export function insertJob(db: Db, job: NewJob): JobWithItems {
  return db.transaction((tx) => {
    const seq =
      tx
        .select({ n: sql<number>`coalesce(max(${jobs.seq}), 0) + 1` })
        .from(jobs)
        .get()?.n ?? 1;
    const row = tx
      .insert(jobs)
      .values({
        id: job.id,
        seq,
        kind: job.kind,
        keyId: job.keyId,
        model: job.model,
        options: job.options,
        steps: job.steps ?? null,
        idempotencyKey: job.idempotencyKey ?? null,
        requestSha256: job.requestSha256 ?? null,
      })
      .returning()
      .get();
    const items = job.items.map((item, index) =>
      tx
        .insert(jobItems)
        .values({
          jobId: job.id,
          index,
          sourceName: item.sourceName ?? null,
          inputPath: item.inputPath ?? null,
          inputBytes: item.inputBytes ?? 0,
        })
        .returning()
        .get(),
    );
    return { job: row, items };
  });
}

export function getJob(db: Db, id: string): JobWithItems | null {
  const job = db.select().from(jobs).where(eq(jobs.id, id)).get();
  if (!job) return null;
  const items = db
    .select()
    .from(jobItems)
    .where(eq(jobItems.jobId, id))
    .orderBy(asc(jobItems.index))
    .all();
  return { job, items };
}

export function getItem(db: Db, jobId: string, index: number): JobItemRow | null {
  return (
    db
      .select()
      .from(jobItems)
      .where(and(eq(jobItems.jobId, jobId), eq(jobItems.index, index)))
      .get() ?? null
  );
}

/** The job of this kind that this API key made with this Idempotency-Key, if any. */
export function jobByIdempotencyKey(
  db: Db,
  keyId: string,
  kind: string,
  idempotencyKey: string,
): JobWithItems | null {
  const row = db
    .select({ id: jobs.id })
    .from(jobs)
    .where(and(eq(jobs.keyId, keyId), eq(jobs.kind, kind), eq(jobs.idempotencyKey, idempotencyKey)))
    .get();
  return row ? getJob(db, row.id) : null;
}

/** Jobs of these kinds with one of `statuses`, of one API key or (keyId undefined) of all. */
export function countJobs(
  db: Db,
  kinds: readonly string[],
  statuses: readonly JobStatus[],
  keyId?: string,
): number {
  const conditions = [inArray(jobs.kind, kinds), inArray(jobs.status, statuses)];
  if (keyId !== undefined) conditions.push(eq(jobs.keyId, keyId));
  return (
    db
      .select({ n: sql<number>`count(*)` })
      .from(jobs)
      .where(and(...conditions))
      .get()?.n ?? 0
  );
}

/** Marks the oldest queued job (of these kinds) running, attempts + 1, and returns it. */
export function claimNextJob(db: Db, kinds?: readonly string[]): JobWithItems | null {
  const claimed = db.transaction((tx) => {
    const conditions = [eq(jobs.status, "queued")];
    if (kinds) conditions.push(inArray(jobs.kind, kinds));
    const next = tx
      .select({ id: jobs.id })
      .from(jobs)
      .where(and(...conditions))
      .orderBy(asc(jobs.seq))
      .limit(1)
      .get();
    if (!next) return null;
    return tx
      .update(jobs)
      .set({
        status: "running",
        step: 0,
        startedAt: new Date(),
        attempts: sql`${jobs.attempts} + 1`,
      })
      .where(and(eq(jobs.id, next.id), eq(jobs.status, "queued")))
      .returning({ id: jobs.id })
      .get();
  });
  return claimed ? getJob(db, claimed.id) : null;
}

/** Marks this job running, attempts + 1, when it is queued or running (its runner died); null
 * when it is over or gone. The work queue's runner (PostgreSQL) claims jobs by id. */
export function claimJob(db: Db, id: string): JobWithItems | null {
  const claimed = db
    .update(jobs)
    .set({ status: "running", step: 0, startedAt: new Date(), attempts: sql`${jobs.attempts} + 1` })
    .where(and(eq(jobs.id, id), inArray(jobs.status, ACTIVE_STATUSES)))
    .returning({ id: jobs.id })
    .get();
  return claimed ? getJob(db, claimed.id) : null;
}

/** The statuses of these jobs (those that exist). */
export function statusesOf(db: Db, ids: readonly string[]): Map<string, JobStatus> {
  if (ids.length === 0) return new Map();
  const rows = db
    .select({ id: jobs.id, status: jobs.status })
    .from(jobs)
    .where(inArray(jobs.id, [...ids]))
    .all();
  return new Map(rows.map((r) => [r.id, r.status]));
}

export type ItemValues = Partial<{
  status: ItemStatus;
  errorCode: string | null;
  errorMessage: string | null;
  outputs: Record<string, string> | null;
  outputSha256: string | null;
  metadata: Record<string, unknown> | null;
  startedAt: Date | null;
  finishedAt: Date | null;
}>;

export function setItem(db: Db, jobId: string, index: number, values: ItemValues): void {
  db.update(jobItems)
    .set(values)
    .where(and(eq(jobItems.jobId, jobId), eq(jobItems.index, index)))
    .run();
}

export type JobValues = Partial<{
  status: JobStatus;
  errorCode: string | null;
  errorMessage: string | null;
  progress: number;
  step: number;
  finishedAt: Date | null;
}>;

export function setJob(db: Db, id: string, values: JobValues): void {
  db.update(jobs).set(values).where(eq(jobs.id, id)).run();
}

/** Cancels a queued or running job's unfinished items; returns false when it was already over. */
export function cancelJob(db: Db, id: string): boolean {
  return db.transaction((tx) => {
    const done = tx
      .update(jobs)
      .set({
        status: "canceled",
        finishedAt: new Date(),
        errorCode: "canceled",
        errorMessage: "canceled by request",
      })
      .where(and(eq(jobs.id, id), inArray(jobs.status, ACTIVE_STATUSES)))
      .returning({ id: jobs.id })
      .all();
    if (done.length === 0) return false;
    tx.update(jobItems)
      .set({ status: "canceled", finishedAt: new Date() })
      .where(and(eq(jobItems.jobId, id), inArray(jobItems.status, ACTIVE_STATUSES)))
      .run();
    return true;
  });
}

export function jobsWithStatus(db: Db, status: JobStatus): JobWithItems[] {
  return db
    .select({ id: jobs.id })
    .from(jobs)
    .where(eq(jobs.status, status))
    .orderBy(asc(jobs.seq))
    .all()
    .flatMap(({ id }) => getJob(db, id) ?? []);
}

/** A key's jobs of one kind, newest first (every key's when keyId is null). */
export function listJobs(
  db: Db,
  filter: {
    kind: string;
    keyId: string | null;
    status?: JobStatus;
    limit: number;
    beforeSeq?: number;
  },
): JobWithItems[] {
  const conditions = [eq(jobs.kind, filter.kind)];
  if (filter.keyId !== null) conditions.push(eq(jobs.keyId, filter.keyId));
  if (filter.status) conditions.push(eq(jobs.status, filter.status));
  if (filter.beforeSeq !== undefined) conditions.push(lt(jobs.seq, filter.beforeSeq));
  return db
    .select({ id: jobs.id })
    .from(jobs)
    .where(and(...conditions))
    .orderBy(desc(jobs.seq))
    .limit(filter.limit)
    .all()
    .flatMap(({ id }) => getJob(db, id) ?? []);
}

/** Deletes a finished job, its items and its webhooks; false when it does not exist or is
 * still active. */
export function deleteJob(db: Db, id: string): boolean {
  return (
    db
      .delete(jobs)
      .where(and(eq(jobs.id, id), inArray(jobs.status, TERMINAL_STATUSES)))
      .returning({ id: jobs.id })
      .all().length > 0
  );
}

/** Finished jobs (every kind) that finished before `before`, oldest first. */
export function finishedJobsBefore(db: Db, before: Date): string[] {
  return db
    .select({ id: jobs.id })
    .from(jobs)
    .where(and(inArray(jobs.status, TERMINAL_STATUSES), lt(jobs.finishedAt, before)))
    .orderBy(asc(jobs.seq))
    .all()
    .map((r) => r.id);
}
