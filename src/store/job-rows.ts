// Job rows: insert a job with its items in one transaction, read it back, claim the oldest queued
// one, record item and job outcomes. All synchronous (better-sqlite3); the runner is
// pipeline/work/job-runner.ts.

import { randomBytes } from "node:crypto";
import { and, asc, desc, eq, inArray, lt, sql } from "drizzle-orm";
import type { Db } from "./db.ts";
import {
  ACTIVE_STATUSES,
  type ItemStatus,
  type JobItemRow,
  type JobKind,
  type JobRow,
  type JobStatus,
  jobItems,
  jobs,
  TERMINAL_STATUSES,
} from "./schema.ts";

const ID_PREFIX: Record<JobKind, string> = { encode: "enc", decode: "dec", reconstruct: "rec" };

export function newJobId(kind: JobKind): string {
  return `${ID_PREFIX[kind]}_${randomBytes(9).toString("base64url")}`;
}

export interface NewItem {
  sourceName: string;
  inputPath: string;
  inputBytes: number;
}

export interface NewJob {
  id: string;
  kind: JobKind;
  keyId: string | null;
  model: string;
  options: Record<string, unknown>;
  items: NewItem[];
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
      })
      .returning()
      .get();
    const items = job.items.map((item, index) =>
      tx
        .insert(jobItems)
        .values({ jobId: job.id, index, ...item })
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

/** Jobs of this key that are queued or running. */
export function countActiveJobs(db: Db, keyId: string): number {
  const row = db
    .select({ n: sql<number>`count(*)` })
    .from(jobs)
    .where(and(eq(jobs.keyId, keyId), inArray(jobs.status, ACTIVE_STATUSES)))
    .get();
  return row?.n ?? 0;
}

/** Marks the oldest queued job running and returns it (null when none is queued). */
export function claimNextJob(db: Db): JobWithItems | null {
  const claimed = db.transaction((tx) => {
    const next = tx
      .select({ id: jobs.id })
      .from(jobs)
      .where(eq(jobs.status, "queued"))
      .orderBy(asc(jobs.seq))
      .limit(1)
      .get();
    if (!next) return null;
    return tx
      .update(jobs)
      .set({
        status: "running",
        startedAt: new Date(),
        attempts: sql`${jobs.attempts} + 1`,
      })
      .where(and(eq(jobs.id, next.id), eq(jobs.status, "queued")))
      .returning({ id: jobs.id })
      .get();
  });
  return claimed ? getJob(db, claimed.id) : null;
}

export function setItem(
  db: Db,
  jobId: string,
  index: number,
  values: Partial<{
    status: ItemStatus;
    errorCode: string | null;
    errorMessage: string | null;
    outputs: Record<string, string> | null;
    outputSha256: string | null;
    metadata: Record<string, unknown> | null;
    startedAt: Date | null;
    finishedAt: Date | null;
  }>,
): void {
  db.update(jobItems)
    .set(values)
    .where(and(eq(jobItems.jobId, jobId), eq(jobItems.index, index)))
    .run();
}

export function setJob(
  db: Db,
  id: string,
  values: Partial<{
    status: JobStatus;
    errorCode: string | null;
    errorMessage: string | null;
    progress: number;
    finishedAt: Date | null;
  }>,
): void {
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
      .where(and(eq(jobItems.jobId, id), inArray(jobItems.status, ["queued", "running"])))
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
    kind: JobKind;
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

/** Deletes a finished job and its items; false when it does not exist or is still active. */
export function deleteJob(db: Db, id: string): boolean {
  return db.transaction((tx) => {
    const row = tx.select({ status: jobs.status }).from(jobs).where(eq(jobs.id, id)).get();
    if (!row || (ACTIVE_STATUSES as readonly string[]).includes(row.status)) return false;
    tx.delete(jobItems).where(eq(jobItems.jobId, id)).run();
    tx.delete(jobs).where(eq(jobs.id, id)).run();
    return true;
  });
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
