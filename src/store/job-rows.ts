// Job rows, for every kind of job (encodings, decodings, reconstructions, generations): insert a
// job with its items in one transaction, read it back, find it by Idempotency-Key, claim the
// oldest queued one, record item and job outcomes, list, count, delete. All synchronous
// (better-sqlite3); the runner is pipeline/work/job-runner.ts, the kinds pipeline/work/job-kinds.ts.
// What a request or the runner does often is prepared once per connection (db.ts `prepared`).

import { randomBytes } from "node:crypto";
import { and, asc, desc, eq, inArray, lt, type Placeholder, sql } from "drizzle-orm";
import { type Db, prepared } from "./db.ts";
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

/** A new job's columns as both stores insert them (the rest take their defaults; SQLite numbers
 *  `seq` itself, PostgreSQL by identity). */
export function jobValues(job: NewJob) {
  return {
    id: job.id,
    kind: job.kind,
    keyId: job.keyId,
    model: job.model,
    options: job.options,
    steps: job.steps ?? null,
    idempotencyKey: job.idempotencyKey ?? null,
    requestSha256: job.requestSha256 ?? null,
  };
}

/** A new job's items' columns, in order. */
export function itemValues(job: NewJob) {
  return job.items.map((item, index) => ({
    jobId: job.id,
    index,
    sourceName: item.sourceName ?? null,
    inputPath: item.inputPath ?? null,
    inputBytes: item.inputBytes ?? 0,
  }));
}

export function insertJob(db: Db, job: NewJob): JobWithItems {
  const q = insertQueries(db);
  return db.transaction(() => {
    const seq = q.nextSeq.get()?.n ?? 1;
    const row = q.job.get({ ...jobValues(job), seq }) as JobRow;
    const items = itemValues(job).map((values) => q.item.get(values) as JobItemRow);
    return { job: row, items };
  });
}

/** Each column of `columns` as the placeholder of its own name. */
const placeholders = <K extends string>(columns: readonly K[]) =>
  Object.fromEntries(columns.map((c) => [c, sql.placeholder(c)])) as unknown as {
    [P in K]: Placeholder<P>;
  };

const insertQueries = (db: Db) =>
  prepared(db, "insertJob", () => ({
    nextSeq: db
      .select({ n: sql<number>`coalesce(max(${jobs.seq}), 0) + 1` })
      .from(jobs)
      .prepare(),
    job: db
      .insert(jobs)
      .values(
        placeholders([
          "id",
          "seq",
          "kind",
          "keyId",
          "model",
          "options",
          "steps",
          "idempotencyKey",
          "requestSha256",
        ] as const),
      )
      .returning()
      .prepare(),
    item: db
      .insert(jobItems)
      .values(placeholders(["jobId", "index", "sourceName", "inputPath", "inputBytes"] as const))
      .returning()
      .prepare(),
  }));

const readQueries = (db: Db) =>
  prepared(db, "readJob", () => ({
    job: db
      .select()
      .from(jobs)
      .where(eq(jobs.id, sql.placeholder("id")))
      .prepare(),
    items: db
      .select()
      .from(jobItems)
      .where(eq(jobItems.jobId, sql.placeholder("id")))
      .orderBy(asc(jobItems.index))
      .prepare(),
    item: db
      .select()
      .from(jobItems)
      .where(
        and(
          eq(jobItems.jobId, sql.placeholder("id")),
          eq(jobItems.index, sql.placeholder("index")),
        ),
      )
      .prepare(),
  }));

export function getJob(db: Db, id: string): JobWithItems | null {
  const q = readQueries(db);
  const job = q.job.get({ id });
  if (!job) return null;
  return { job, items: q.items.all({ id }) };
}

export function getItem(db: Db, jobId: string, index: number): JobItemRow | null {
  return readQueries(db).item.get({ id: jobId, index }) ?? null;
}

/** The job of this kind that this API key made with this Idempotency-Key, if any. */
export function jobByIdempotencyKey(
  db: Db,
  keyId: string,
  kind: string,
  idempotencyKey: string,
): JobWithItems | null {
  const row = prepared(db, "jobByIdempotencyKey", () =>
    db
      .select({ id: jobs.id })
      .from(jobs)
      .where(
        and(
          eq(jobs.keyId, sql.placeholder("keyId")),
          eq(jobs.kind, sql.placeholder("kind")),
          eq(jobs.idempotencyKey, sql.placeholder("idempotencyKey")),
        ),
      )
      .prepare(),
  ).get({ keyId, kind, idempotencyKey });
  return row ? getJob(db, row.id) : null;
}

/** Jobs of these kinds with one of `statuses`, of one API key or (keyId undefined) of all. */
export function countJobs(
  db: Db,
  kinds: readonly string[],
  statuses: readonly JobStatus[],
  keyId?: string,
): number {
  // The lists of kinds and statuses are the few the code spells (quota lanes, active
  // statuses): one prepared count for each, with the key as its placeholder.
  const name = `countJobs:${kinds.join(",")}:${statuses.join(",")}:${keyId !== undefined}`;
  const count = prepared(db, name, () => {
    const conditions = [inArray(jobs.kind, [...kinds]), inArray(jobs.status, [...statuses])];
    if (keyId !== undefined) conditions.push(eq(jobs.keyId, sql.placeholder("keyId")));
    return db
      .select({ n: sql<number>`count(*)` })
      .from(jobs)
      .where(and(...conditions))
      .prepare();
  });
  return count.get({ keyId })?.n ?? 0;
}

/** Marks the oldest queued job (of these kinds) running, attempts + 1, and returns it. */
export function claimNextJob(db: Db, kinds?: readonly string[]): JobWithItems | null {
  const next = prepared(db, `nextQueued:${kinds?.join(",") ?? "*"}`, () => {
    const conditions = [eq(jobs.status, "queued")];
    if (kinds) conditions.push(inArray(jobs.kind, [...kinds]));
    return db
      .select({ id: jobs.id })
      .from(jobs)
      .where(and(...conditions))
      .orderBy(asc(jobs.seq))
      .limit(1)
      .prepare();
  });
  const claim = prepared(db, "claimQueued", () =>
    db
      .update(jobs)
      .set({
        status: "running",
        step: 0,
        // set() binds a placeholder through the column's encoder (a Date to its ms), as a
        // value; its types omit placeholders.
        startedAt: sql.placeholder("now") as unknown as Date,
        attempts: sql`${jobs.attempts} + 1`,
      })
      .where(and(eq(jobs.id, sql.placeholder("id")), eq(jobs.status, "queued")))
      .returning({ id: jobs.id })
      .prepare(),
  );
  const claimed = db.transaction(() => {
    const found = next.get();
    return found ? claim.get({ id: found.id, now: new Date() }) : undefined;
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

/**
 * An update of the columns `values` sets (drizzle's set() skips undefined ones too), prepared once
 * per set of columns (`name`; `set` builds its values only when the statement is first made): a
 * null is part of the statement (a column's encoder would be handed it, and a timestamp's fails
 * on null), every other value a placeholder of the column's name.
 */
function updateOf<V extends object>(values: V): { name: string; set: () => V } {
  const entries = Object.entries(values).filter(([, v]) => v !== undefined);
  entries.sort(([a], [b]) => (a < b ? -1 : 1));
  return {
    name: entries.map(([k, v]) => (v === null ? `${k}=null` : k)).join(","),
    // set() binds each placeholder through its column's encoder (Date, JSON)
    set: () =>
      Object.fromEntries(
        entries.map(([k, v]) => [k, v === null ? sql`null` : sql.placeholder(k)]),
      ) as V,
  };
}

export function setItem(db: Db, jobId: string, index: number, values: ItemValues): void {
  const update = updateOf(values);
  if (update.name === "") return;
  prepared(db, `setItem:${update.name}`, () =>
    db
      .update(jobItems)
      .set(update.set())
      .where(
        and(
          eq(jobItems.jobId, sql.placeholder("_jobId")),
          eq(jobItems.index, sql.placeholder("_index")),
        ),
      )
      .prepare(),
  ).run({ ...values, _jobId: jobId, _index: index });
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
  const update = updateOf(values);
  if (update.name === "") return;
  prepared(db, `setJob:${update.name}`, () =>
    db
      .update(jobs)
      .set(update.set())
      .where(eq(jobs.id, sql.placeholder("_id")))
      .prepare(),
  ).run({ ...values, _id: id });
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
