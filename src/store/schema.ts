// The SQLite schema, in TypeScript. drizzle-kit turns changes here into SQL files in migrations/
// (`npm run db:generate`); each issue adds its tables (runs, metrics, ...) the same way.

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

/** The statuses of a job and of each of its items: one list, read by the tables below, the
 * request/response schemas (server/schemas.ts) and so the OpenAPI document. */
export const JOB_STATUSES = ["queued", "running", "succeeded", "failed", "canceled"] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export const ITEM_STATUSES = JOB_STATUSES;
export type ItemStatus = JobStatus;
/** Work not yet finished (counted against quotas). */
export const ACTIVE_STATUSES = ["queued", "running"] as const satisfies readonly JobStatus[];
/** Work that has finished one way or another. */
export const TERMINAL_STATUSES = [
  "succeeded",
  "failed",
  "canceled",
] as const satisfies readonly JobStatus[];

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

/**
 * Every job of every resource (encodings, decodings, reconstructions, generations): one row per
 * job, its kind naming the entry of the kind registry (pipeline/work/job-kinds.ts) that runs it.
 */
export const jobs = sqliteTable(
  "jobs",
  {
    id: text("id").primaryKey(),
    /** Insertion order over every kind: jobs are taken oldest first, lists page on it. */
    seq: integer("seq").notNull(),
    /** The kind registry's name: encode, decode, reconstruct, generate. */
    kind: text("kind").notNull(),
    status: text("status", { enum: JOB_STATUSES }).notNull().default("queued"),
    /** The API key that made the job; null for jobs made by the CLI. */
    keyId: text("key_id").references(() => apiKeys.id),
    model: text("model").notNull(),
    /** The validated request options, defaults filled in, JSON. */
    options: text("options", { mode: "json" }).notNull().$type<Record<string, unknown>>(),
    errorCode: text("error_code"),
    errorMessage: text("error_message"),
    /** 0..1 over all items. */
    progress: real("progress").notNull().default(0),
    /** Steps done of `steps` (a generation's sampler steps); null steps: items are the steps. */
    step: integer("step").notNull().default(0),
    steps: integer("steps"),
    /** Times the runner started this job (more than 1 after a restart resumed it). */
    attempts: integer("attempts").notNull().default(0),
    /** The client's Idempotency-Key header (unique per API key and kind) and the sha256 of its
     * request. */
    idempotencyKey: text("idempotency_key"),
    requestSha256: text("request_sha256"),
    createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull().default(now),
    startedAt: integer("started_at", { mode: "timestamp_ms" }),
    finishedAt: integer("finished_at", { mode: "timestamp_ms" }),
  },
  (t) => [
    index("jobs_status_seq").on(t.status, t.seq),
    // The quota counts (a key's active jobs of a lane; queued generations) and the claim of the
    // next queued job read only the few active rows through these; with (key_id, status) and
    // (kind, seq) alone the planner walked every job a key or kind ever had.
    index("jobs_key_status_kind").on(t.keyId, t.status, t.kind),
    index("jobs_status_kind_seq").on(t.status, t.kind, t.seq),
    index("jobs_kind_seq").on(t.kind, t.seq),
    // A key's list of one kind, newest first.
    index("jobs_key_kind_seq").on(t.keyId, t.kind, t.seq),
    uniqueIndex("jobs_key_kind_idempotency").on(t.keyId, t.kind, t.idempotencyKey),
  ],
);

/** A job's items: one per input file (encode, decode, reconstruct) or per video (generate). */
export const jobItems = sqliteTable(
  "job_items",
  {
    jobId: text("job_id")
      .notNull()
      .references(() => jobs.id, { onDelete: "cascade" }),
    index: integer("index").notNull(),
    /** The client's file name (for display and metadata only; never used as a path); null when
     * the item has no file of its own (a generation's videos). */
    sourceName: text("source_name"),
    /** Where the item's input is, absolute; null when it has none of its own. */
    inputPath: text("input_path"),
    inputBytes: integer("input_bytes").notNull().default(0),
    status: text("status", { enum: ITEM_STATUSES }).notNull().default("queued"),
    errorCode: text("error_code"),
    errorMessage: text("error_message"),
    /** Output files by role (the kind's output roles: latents, metadata, video); written only when
     * complete. */
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

export const WEBHOOK_STATUSES = ["pending", "delivered", "failed"] as const;

/**
 * Webhooks (server/webhooks.ts): one row per job that asked for one (deleted with the job). The
 * delivery is sent once the job is over, signed per Standard Webhooks, and retried with backoff; the row
 * is the durable state, so deliveries survive restarts.
 */
export const webhooks = sqliteTable(
  "webhooks",
  {
    /** The Standard Webhooks message id (webhook-id), the same on every retry. */
    id: text("id").primaryKey(),
    jobId: text("job_id")
      .notNull()
      .references(() => jobs.id, { onDelete: "cascade" }),
    url: text("url").notNull(),
    status: text("status", { enum: WEBHOOK_STATUSES }).notNull().default("pending"),
    attempts: integer("attempts").notNull().default(0),
    nextAttemptAt: integer("next_attempt_at", { mode: "timestamp_ms" }).notNull().default(now),
    lastError: text("last_error"),
    createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull().default(now),
    deliveredAt: integer("delivered_at", { mode: "timestamp_ms" }),
  },
  (t) => [index("webhooks_status_next").on(t.status, t.nextAttemptAt)],
);

export type WebhookRow = typeof webhooks.$inferSelect;

/** Training runs (docs/runs.md): one row per run_id, fed by the run's events.jsonl. */
export const RUN_KINDS = ["autoencoder", "diffusion"] as const;
export type RunKind = (typeof RUN_KINDS)[number];

export const RUN_STATUSES = ["running", "finished", "interrupted", "failed"] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

export const RUN_SOURCES = ["local", "import"] as const;

export const ARTIFACT_KINDS = ["checkpoint", "export", "spectrum", "log", "bundle"] as const;
export type ArtifactKind = (typeof ARTIFACT_KINDS)[number];

export const runs = sqliteTable(
  "runs",
  {
    /** run_id of the config event (the run folder's name). */
    id: text("id").primaryKey(),
    kind: text("kind", { enum: RUN_KINDS }).notNull(),
    variant: text("variant"),
    status: text("status", { enum: RUN_STATUSES }).notNull(),
    /** The run folder, absolute. */
    folder: text("folder").notNull(),
    /** The config event, JSON. */
    config: text("config", { mode: "json" }).notNull().$type<Record<string, unknown>>(),
    /** Diffusion runs: the autoencoder run they were trained on (config.autoencoder.run_id). */
    autoencoderRunId: text("autoencoder_run_id"),
    /** The last step seen in any event. */
    step: integer("step").notNull().default(0),
    /** Total steps of the run's train config, when known. */
    steps: integer("steps"),
    /** Why the run failed or was interrupted. */
    error: text("error"),
    startedAt: integer("started_at", { mode: "timestamp_ms" }),
    finishedAt: integer("finished_at", { mode: "timestamp_ms" }),
    importedAt: integer("imported_at", { mode: "timestamp_ms" }),
    source: text("source", { enum: RUN_SOURCES }).notNull(),
    /** The trainer's process id while a locally started run is running. */
    pid: integer("pid"),
    /** Tail position in events.jsonl: bytes of whole lines consumed, and their count. */
    bytesRead: integer("bytes_read").notNull().default(0),
    linesRead: integer("lines_read").notNull().default(0),
    createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull().default(now),
    updatedAt: integer("updated_at", { mode: "timestamp_ms" }).notNull().default(now),
  },
  (t) => [
    index("runs_started").on(t.startedAt, t.id),
    index("runs_kind_started").on(t.kind, t.startedAt),
    index("runs_autoencoder").on(t.autoencoderRunId),
    index("runs_status").on(t.status),
  ],
);

/** Every valid event of a run; seq is its line number in events.jsonl (1-based). */
export const runEvents = sqliteTable(
  "run_events",
  {
    runId: text("run_id")
      .notNull()
      .references(() => runs.id, { onDelete: "cascade" }),
    seq: integer("seq").notNull(),
    type: text("type").notNull(),
    step: integer("step"),
    /** Unix seconds, as the trainer wrote it. */
    time: real("time"),
    json: text("json", { mode: "json" }).notNull().$type<Record<string, unknown>>(),
  },
  (t) => [
    primaryKey({ columns: [t.runId, t.seq] }),
    index("run_events_type").on(t.runId, t.type, t.seq),
  ],
);

/** `<event type>/<field>` numbers by step (a step logged twice, e.g. after a resume: the last). */
export const runMetrics = sqliteTable(
  "run_metrics",
  {
    runId: text("run_id")
      .notNull()
      .references(() => runs.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    step: integer("step").notNull(),
    value: real("value").notNull(),
    time: real("time"),
  },
  (t) => [uniqueIndex("run_metrics_name_step").on(t.runId, t.name, t.step)],
);

export const runArtifacts = sqliteTable(
  "run_artifacts",
  {
    runId: text("run_id")
      .notNull()
      .references(() => runs.id, { onDelete: "cascade" }),
    kind: text("kind", { enum: ARTIFACT_KINDS }).notNull(),
    /** As the event wrote it (relative to the run folder or the repository), or absolute. */
    path: text("path").notNull(),
    sha256: text("sha256"),
    step: integer("step"),
  },
  (t) => [uniqueIndex("run_artifacts_path").on(t.runId, t.kind, t.path)],
);

export type RunRow = typeof runs.$inferSelect;
export type RunEventRow = typeof runEvents.$inferSelect;
export type RunArtifactRow = typeof runArtifacts.$inferSelect;
