// The SQLite schema, in TypeScript. drizzle-kit turns changes here into SQL files in migrations/
// (`npm run db:generate`); later issues add their tables (runs, metrics) the same way.

import { sql } from "drizzle-orm";
import {
  index,
  integer,
  primaryKey,
  real,
  sqliteTable,
  text,
  uniqueIndex,
} from "drizzle-orm/sqlite-core";

export const KEY_ROLES = ["user", "admin"] as const;
export type KeyRole = (typeof KEY_ROLES)[number];

export const JOB_KINDS = ["encode", "decode", "reconstruct"] as const;
export type JobKind = (typeof JOB_KINDS)[number];

export const JOB_STATUSES = ["queued", "running", "succeeded", "failed", "canceled"] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

export const ITEM_STATUSES = ["queued", "running", "succeeded", "failed", "canceled"] as const;
export type ItemStatus = (typeof ITEM_STATUSES)[number];

const now = sql`(CAST(unixepoch('subsec') * 1000 AS INTEGER))`;

export const apiKeys = sqliteTable("api_keys", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  role: text("role", { enum: KEY_ROLES }).notNull(),
  /** sha256 (hex) of the secret; the secret itself is never stored. */
  secretSha256: text("secret_sha256").notNull().unique(),
  createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull().default(now),
  revokedAt: integer("revoked_at", { mode: "timestamp_ms" }),
});

export const jobs = sqliteTable(
  "jobs",
  {
    id: text("id").primaryKey(),
    /** Insertion order: jobs are taken oldest first. */
    seq: integer("seq").notNull(),
    kind: text("kind", { enum: JOB_KINDS }).notNull(),
    status: text("status", { enum: JOB_STATUSES }).notNull().default("queued"),
    /** The API key that made the job; null for jobs made by the CLI. */
    keyId: text("key_id").references(() => apiKeys.id),
    model: text("model").notNull(),
    /** The validated request options, JSON. */
    options: text("options", { mode: "json" }).notNull().$type<Record<string, unknown>>(),
    errorCode: text("error_code"),
    errorMessage: text("error_message"),
    /** 0..1 over all items. */
    progress: real("progress").notNull().default(0),
    /** Times the runner started this job (more than 1 after a restart resumed it). */
    attempts: integer("attempts").notNull().default(0),
    createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull().default(now),
    startedAt: integer("started_at", { mode: "timestamp_ms" }),
    finishedAt: integer("finished_at", { mode: "timestamp_ms" }),
  },
  (t) => [
    index("jobs_status_seq").on(t.status, t.seq),
    index("jobs_key_status").on(t.keyId, t.status),
  ],
);

export const jobItems = sqliteTable(
  "job_items",
  {
    jobId: text("job_id")
      .notNull()
      .references(() => jobs.id, { onDelete: "cascade" }),
    index: integer("index").notNull(),
    /** The client's file name (for display and metadata only; never used as a path). */
    sourceName: text("source_name").notNull(),
    /** Where the upload (or local file) is, absolute. */
    inputPath: text("input_path").notNull(),
    inputBytes: integer("input_bytes").notNull().default(0),
    status: text("status", { enum: ITEM_STATUSES }).notNull().default("queued"),
    errorCode: text("error_code"),
    errorMessage: text("error_message"),
    /** Output files by role (e.g. {"latents": path} or {"video": path}); written only when complete. */
    outputs: text("outputs", { mode: "json" }).$type<Record<string, string>>(),
    /** sha256 (hex) of the main output file (latents .npy or video). */
    outputSha256: text("output_sha256"),
    /** Per-item results: encoding metadata, decoded frames, PSNR/SSIM per frame. */
    metadata: text("metadata", { mode: "json" }).$type<Record<string, unknown>>(),
    startedAt: integer("started_at", { mode: "timestamp_ms" }),
    finishedAt: integer("finished_at", { mode: "timestamp_ms" }),
  },
  (t) => [primaryKey({ columns: [t.jobId, t.index] })],
);

export type ApiKeyRow = typeof apiKeys.$inferSelect;
export type JobRow = typeof jobs.$inferSelect;
export type JobItemRow = typeof jobItems.$inferSelect;

/** Generation jobs (docs/sampler.md): one sampler run of n videos; outputs by index. */
export const generations = sqliteTable(
  "generations",
  {
    id: text("id").primaryKey(),
    seq: integer("seq").notNull(),
    status: text("status", { enum: JOB_STATUSES }).notNull().default("queued"),
    keyId: text("key_id").references(() => apiKeys.id),
    model: text("model").notNull(),
    /** The resolved settings (label id and name, seed, steps, guidance, method, frames, n, format). */
    options: text("options", { mode: "json" }).notNull().$type<Record<string, unknown>>(),
    /** Sampler steps done of `steps`. */
    step: integer("step").notNull().default(0),
    steps: integer("steps").notNull(),
    /** Output paths, one per video, written only when all are complete. */
    outputs: text("outputs", { mode: "json" }).$type<string[]>(),
    outputSha256: text("output_sha256", { mode: "json" }).$type<string[]>(),
    errorCode: text("error_code"),
    errorMessage: text("error_message"),
    attempts: integer("attempts").notNull().default(0),
    /** The client's Idempotency-Key header (unique per API key) and the sha256 of its request. */
    idempotencyKey: text("idempotency_key"),
    requestSha256: text("request_sha256"),
    createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull().default(now),
    startedAt: integer("started_at", { mode: "timestamp_ms" }),
    finishedAt: integer("finished_at", { mode: "timestamp_ms" }),
  },
  (t) => [
    uniqueIndex("generations_key_idempotency").on(t.keyId, t.idempotencyKey),
    index("generations_status_seq").on(t.status, t.seq),
    index("generations_key_status").on(t.keyId, t.status),
  ],
);

export type GenerationRow = typeof generations.$inferSelect;
