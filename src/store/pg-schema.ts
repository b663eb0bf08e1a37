// The PostgreSQL schema of the jobs, API keys and webhooks (DIFFUSABLE_DATABASE_URL): the same
// tables, columns and TypeScript row types as schema.ts's SQLite ones, in PostgreSQL's types
// (timestamptz, json (keeps the key order, as SQLite does), an identity column for seq, since several processes insert at once).
// drizzle-kit turns changes here into SQL files in migrations/postgres/ (`npm run db:generate`).

import { sql } from "drizzle-orm";
import {
  bigint,
  doublePrecision,
  index,
  integer,
  json,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
} from "drizzle-orm/pg-core";
import { ITEM_STATUSES, JOB_STATUSES, KEY_ROLES, WEBHOOK_STATUSES } from "./schema.ts";

const ms = (name: string) => timestamp(name, { withTimezone: true, mode: "date", precision: 3 });
const now = sql`now()`;

export const apiKeys = pgTable("api_keys", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  role: text("role", { enum: KEY_ROLES }).notNull(),
  secretSha256: text("secret_sha256").notNull().unique(),
  createdAt: ms("created_at").notNull().default(now),
  revokedAt: ms("revoked_at"),
});

export const jobs = pgTable(
  "jobs",
  {
    id: text("id").primaryKey(),
    seq: integer("seq").notNull().generatedAlwaysAsIdentity(),
    kind: text("kind").notNull(),
    status: text("status", { enum: JOB_STATUSES }).notNull().default("queued"),
    keyId: text("key_id").references(() => apiKeys.id),
    model: text("model").notNull(),
    options: json("options").notNull().$type<Record<string, unknown>>(),
    errorCode: text("error_code"),
    errorMessage: text("error_message"),
    progress: doublePrecision("progress").notNull().default(0),
    step: integer("step").notNull().default(0),
    steps: integer("steps"),
    attempts: integer("attempts").notNull().default(0),
    idempotencyKey: text("idempotency_key"),
    requestSha256: text("request_sha256"),
    createdAt: ms("created_at").notNull().default(now),
    startedAt: ms("started_at"),
    finishedAt: ms("finished_at"),
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

export const jobItems = pgTable(
  "job_items",
  {
    jobId: text("job_id")
      .notNull()
      .references(() => jobs.id, { onDelete: "cascade" }),
    index: integer("index").notNull(),
    sourceName: text("source_name"),
    inputPath: text("input_path"),
    inputBytes: bigint("input_bytes", { mode: "number" }).notNull().default(0),
    status: text("status", { enum: ITEM_STATUSES }).notNull().default("queued"),
    errorCode: text("error_code"),
    errorMessage: text("error_message"),
    outputs: json("outputs").$type<Record<string, string>>(),
    outputSha256: text("output_sha256"),
    metadata: json("metadata").$type<Record<string, unknown>>(),
    startedAt: ms("started_at"),
    finishedAt: ms("finished_at"),
  },
  (t) => [primaryKey({ columns: [t.jobId, t.index] })],
);

export const webhooks = pgTable(
  "webhooks",
  {
    id: text("id").primaryKey(),
    jobId: text("job_id")
      .notNull()
      .references(() => jobs.id, { onDelete: "cascade" }),
    url: text("url").notNull(),
    status: text("status", { enum: WEBHOOK_STATUSES }).notNull().default("pending"),
    attempts: integer("attempts").notNull().default(0),
    nextAttemptAt: ms("next_attempt_at").notNull().default(now),
    lastError: text("last_error"),
    createdAt: ms("created_at").notNull().default(now),
    deliveredAt: ms("delivered_at"),
  },
  (t) => [index("webhooks_status_next").on(t.status, t.nextAttemptAt)],
);
