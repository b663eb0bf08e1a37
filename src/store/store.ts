// The store of jobs, API keys and webhooks as every layer above it sees it: one asynchronous
// interface with two implementations, the embedded SQLite file (sqlite-store.ts, the default) and
// PostgreSQL (pg-store.ts, DIFFUSABLE_DATABASE_URL, shared by several service processes).
// open-store.ts picks one from the configuration. Training runs stay in the SQLite file (db.ts).

import type { PublicKey } from "./api-keys.ts";
import type { ItemValues, JobValues, JobWithItems, NewJob } from "./job-rows.ts";
import type { ApiKeyRow, JobItemRow, JobStatus, KeyRole, WebhookRow, webhooks } from "./schema.ts";

export type { PublicKey } from "./api-keys.ts";
export type { ItemValues, JobValues, JobWithItems, NewItem, NewJob } from "./job-rows.ts";
export type { ApiKeyRow, JobItemRow, JobRow, JobStatus, WebhookRow } from "./schema.ts";

/** What a delivery attempt changes in its webhook row. */
export type WebhookValues = Partial<Omit<typeof webhooks.$inferInsert, "id" | "jobId">>;

export interface ListJobsFilter {
  kind: string;
  /** null: every key's jobs. */
  keyId: string | null;
  status?: JobStatus;
  limit: number;
  beforeSeq?: number;
}

export interface Store {
  readonly dialect: "sqlite" | "postgres";

  // Jobs and their items (job-rows.ts for SQLite).
  /** Inserts a job with its items in one transaction (with PostgreSQL, and puts it in the work
   * queue in the same transaction). */
  insertJob(job: NewJob): Promise<JobWithItems>;
  getJob(id: string): Promise<JobWithItems | null>;
  getItem(jobId: string, index: number): Promise<JobItemRow | null>;
  /** The job of this kind that this key made with this Idempotency-Key, if any. */
  jobByIdempotencyKey(
    keyId: string,
    kind: string,
    idempotencyKey: string,
  ): Promise<JobWithItems | null>;
  /** Jobs of these kinds with one of `statuses`, of one key or (keyId undefined) of all. */
  countJobs(
    kinds: readonly string[],
    statuses: readonly JobStatus[],
    keyId?: string,
  ): Promise<number>;
  /** Marks the oldest queued job (of these kinds) running, attempts + 1, and returns it. */
  claimNextJob(kinds?: readonly string[]): Promise<JobWithItems | null>;
  /** Marks this job running, attempts + 1, when it is queued or (its last runner died) running;
   * null when it is over or gone. */
  claimJob(id: string): Promise<JobWithItems | null>;
  setItem(jobId: string, index: number, values: ItemValues): Promise<void>;
  setJob(id: string, values: JobValues): Promise<void>;
  /** Cancels a queued or running job's unfinished items; false when it was already over. */
  cancelJob(id: string): Promise<boolean>;
  jobsWithStatus(status: JobStatus): Promise<JobWithItems[]>;
  /** The statuses of these jobs (the ones that still exist). */
  statusesOf(ids: readonly string[]): Promise<Map<string, JobStatus>>;
  /** A key's jobs of one kind, newest first. */
  listJobs(filter: ListJobsFilter): Promise<JobWithItems[]>;
  /** Deletes a finished job, its items and webhooks; false when unknown or still active. */
  deleteJob(id: string): Promise<boolean>;
  /** Finished jobs that finished before `before`, oldest first. */
  finishedJobsBefore(before: Date): Promise<string[]>;

  // API keys (api-keys.ts).
  createKey(name: string, role: KeyRole): Promise<{ key: PublicKey; secret: string }>;
  listKeys(): Promise<PublicKey[]>;
  /** Revokes a key (idempotent); null when unknown; AppError "last_admin" for the last admin. */
  revokeKey(id: string): Promise<PublicKey | null>;
  /** The live key with this secret, or null. */
  findKeyBySecret(secret: string): Promise<ApiKeyRow | null>;
  keyById(id: string): Promise<ApiKeyRow | null>;
  countKeys(): Promise<number>;

  // Webhooks (server/webhooks.ts).
  insertWebhook(row: { id: string; jobId: string; url: string }): Promise<void>;
  /** Pending deliveries due by `now`, soonest first. */
  dueWebhooks(now: Date, limit: number): Promise<WebhookRow[]>;
  setWebhook(id: string, values: WebhookValues): Promise<void>;

  close(): Promise<void>;
}
