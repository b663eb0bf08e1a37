// The Store (store.ts) on PostgreSQL (DIFFUSABLE_DATABASE_URL), through drizzle's node-postgres
// driver: the jobs, API keys and webhooks of every service process that shares the database.
// Migrations (migrations/postgres/, drizzle-kit) run under an advisory lock, so processes that
// start together apply them once. A new job and its entry in the work queue are written in one
// transaction (`onJobInserted`, pg-work-queue.ts), so no job is queued without being runnable.

import { randomBytes } from "node:crypto";
import { resolve } from "node:path";
import { and, asc, desc, eq, inArray, isNull, lt, lte, type SQL, sql } from "drizzle-orm";
import { drizzle, type NodePgDatabase } from "drizzle-orm/node-postgres";
import { migrate } from "drizzle-orm/node-postgres/migrator";
import pg from "pg";
import { AppError } from "../app-error.ts";
import { hashSecret, publicKey, SECRET_PREFIX } from "./api-keys.ts";
import { MIGRATIONS_DIR } from "./db.ts";
import { itemValues, type JobWithItems, jobValues } from "./job-rows.ts";
import * as schema from "./pg-schema.ts";
import { apiKeys, jobItems, jobs, webhooks } from "./pg-schema.ts";
import { ACTIVE_STATUSES, type JobRow, type JobStatus, TERMINAL_STATUSES } from "./schema.ts";
import type { Store } from "./store.ts";

export const PG_MIGRATIONS_DIR = resolve(MIGRATIONS_DIR, "postgres");

/** Runs SQL inside the transaction that inserts a job (pg-boss's executeSql shape). */
export interface SqlExecutor {
  executeSql(text: string, values?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
}

export interface PgStoreOptions {
  /** Called inside the transaction that inserts a job: puts it in the work queue. */
  onJobInserted?: (job: { id: string; kind: string }, tx: SqlExecutor) => Promise<void>;
  /** Connections in the pool (default 8). */
  max?: number;
}

type PgDb = NodePgDatabase<typeof schema>;

// An arbitrary constant: the advisory lock the migrations are applied under.
const MIGRATION_LOCK = 727_001;

/** Connects, applies pending migrations (one process at a time) and returns the store. */
export async function openPgStore(
  url: string,
  options: PgStoreOptions = {},
): Promise<Store & { pool: pg.Pool }> {
  const pool = new pg.Pool({ connectionString: url, max: options.max ?? 8 });
  // An idle client's error (the server restarted) must not crash the process.
  pool.on("error", (err) => console.error(`database: ${err.message}`));
  try {
    const client = await pool.connect();
    try {
      await client.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK]);
      try {
        await migrate(drizzle(client, { schema }), { migrationsFolder: PG_MIGRATIONS_DIR });
      } finally {
        await client.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK]);
      }
    } finally {
      client.release();
    }
  } catch (err) {
    await pool.end();
    throw new Error(`cannot open database ${redactUrl(url)}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return pgStore(pool, options);
}

/** The URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(the database URL)";
  }
}

/** The jobs with their items, in the order given: two queries whatever the count. */
async function withItems(db: PgDb, rows: JobRow[]): Promise<JobWithItems[]> {
  if (rows.length === 0) return [];
  const items = await db
    .select()
    .from(jobItems)
    .where(
      inArray(
        jobItems.jobId,
        rows.map((r) => r.id),
      ),
    )
    .orderBy(asc(jobItems.jobId), asc(jobItems.index));
  const byJob = new Map<string, typeof items>();
  for (const item of items) {
    const list = byJob.get(item.jobId) ?? [];
    list.push(item);
    byJob.set(item.jobId, list);
  }
  return rows.map((job) => ({ job, items: byJob.get(job.id) ?? [] }));
}

async function jobsWhere(
  db: PgDb,
  where: SQL | undefined,
  order: "asc" | "desc",
  limit?: number,
): Promise<JobWithItems[]> {
  const query = db
    .select()
    .from(jobs)
    .where(where)
    .orderBy(order === "asc" ? asc(jobs.seq) : desc(jobs.seq));
  return await withItems(db, await (limit === undefined ? query : query.limit(limit)));
}

async function getJobIn(db: PgDb, id: string): Promise<JobWithItems | null> {
  return (await jobsWhere(db, eq(jobs.id, id), "asc"))[0] ?? null;
}

const claimSet = () => ({
  status: "running" as const,
  step: 0,
  startedAt: new Date(),
  attempts: sql`${jobs.attempts} + 1`,
});

export function pgStore(pool: pg.Pool, options: PgStoreOptions = {}): Store & { pool: pg.Pool } {
  const db: PgDb = drizzle(pool, { schema });
  return {
    dialect: "postgres",
    pool,

    async insertJob(job) {
      const client = await pool.connect();
      try {
        await client.query("BEGIN");
        const tx = drizzle(client, { schema });
        const [row] = await tx.insert(jobs).values(jobValues(job)).returning();
        const items =
          job.items.length === 0
            ? []
            : await tx.insert(jobItems).values(itemValues(job)).returning();
        await options.onJobInserted?.(
          { id: job.id, kind: job.kind },
          { executeSql: async (text, values) => await client.query(text, values) },
        );
        await client.query("COMMIT");
        items.sort((a, b) => a.index - b.index);
        return { job: row as JobRow, items };
      } catch (err) {
        await client.query("ROLLBACK").catch(() => {});
        throw err;
      } finally {
        client.release();
      }
    },

    getJob: (id) => getJobIn(db, id),

    async getItem(jobId, index) {
      const [row] = await db
        .select()
        .from(jobItems)
        .where(and(eq(jobItems.jobId, jobId), eq(jobItems.index, index)));
      return row ?? null;
    },

    async jobByIdempotencyKey(keyId, kind, idempotencyKey) {
      const found = await jobsWhere(
        db,
        and(eq(jobs.keyId, keyId), eq(jobs.kind, kind), eq(jobs.idempotencyKey, idempotencyKey)),
        "asc",
      );
      return found[0] ?? null;
    },

    async countJobs(kinds, statuses, keyId) {
      const conditions = [inArray(jobs.kind, [...kinds]), inArray(jobs.status, [...statuses])];
      if (keyId !== undefined) conditions.push(eq(jobs.keyId, keyId));
      const [row] = await db
        .select({ n: sql<number>`count(*)::int` })
        .from(jobs)
        .where(and(...conditions));
      return row?.n ?? 0;
    },

    async claimNextJob(kinds) {
      const conditions = [eq(jobs.status, "queued")];
      if (kinds) conditions.push(inArray(jobs.kind, [...kinds]));
      // The row is locked by its select (another process skips it), then claimed.
      const id = await db.transaction(async (tx) => {
        const [next] = await tx
          .select({ id: jobs.id })
          .from(jobs)
          .where(and(...conditions))
          .orderBy(asc(jobs.seq))
          .limit(1)
          .for("update", { skipLocked: true });
        if (!next) return null;
        await tx.update(jobs).set(claimSet()).where(eq(jobs.id, next.id));
        return next.id;
      });
      return id === null ? null : await getJobIn(db, id);
    },

    async claimJob(id) {
      const [claimed] = await db
        .update(jobs)
        .set(claimSet())
        .where(and(eq(jobs.id, id), inArray(jobs.status, ACTIVE_STATUSES)))
        .returning({ id: jobs.id });
      return claimed ? await getJobIn(db, claimed.id) : null;
    },

    async setItem(jobId, index, values) {
      await db
        .update(jobItems)
        .set(values)
        .where(and(eq(jobItems.jobId, jobId), eq(jobItems.index, index)));
    },

    async setJob(id, values) {
      await db.update(jobs).set(values).where(eq(jobs.id, id));
    },

    async cancelJob(id) {
      return await db.transaction(async (tx) => {
        const done = await tx
          .update(jobs)
          .set({
            status: "canceled",
            finishedAt: new Date(),
            errorCode: "canceled",
            errorMessage: "canceled by request",
          })
          .where(and(eq(jobs.id, id), inArray(jobs.status, ACTIVE_STATUSES)))
          .returning({ id: jobs.id });
        if (done.length === 0) return false;
        await tx
          .update(jobItems)
          .set({ status: "canceled", finishedAt: new Date() })
          .where(and(eq(jobItems.jobId, id), inArray(jobItems.status, ACTIVE_STATUSES)));
        return true;
      });
    },

    jobsWithStatus: (status) => jobsWhere(db, eq(jobs.status, status), "asc"),

    async statusesOf(ids) {
      if (ids.length === 0) return new Map();
      const rows = await db
        .select({ id: jobs.id, status: jobs.status })
        .from(jobs)
        .where(inArray(jobs.id, [...ids]));
      return new Map(rows.map((r) => [r.id, r.status as JobStatus]));
    },

    listJobs(filter) {
      const conditions = [eq(jobs.kind, filter.kind)];
      if (filter.keyId !== null) conditions.push(eq(jobs.keyId, filter.keyId));
      if (filter.status) conditions.push(eq(jobs.status, filter.status));
      if (filter.beforeSeq !== undefined) conditions.push(lt(jobs.seq, filter.beforeSeq));
      return jobsWhere(db, and(...conditions), "desc", filter.limit);
    },

    async deleteJob(id) {
      const gone = await db
        .delete(jobs)
        .where(and(eq(jobs.id, id), inArray(jobs.status, TERMINAL_STATUSES)))
        .returning({ id: jobs.id });
      return gone.length > 0;
    },

    async finishedJobsBefore(before) {
      const rows = await db
        .select({ id: jobs.id })
        .from(jobs)
        .where(and(inArray(jobs.status, TERMINAL_STATUSES), lt(jobs.finishedAt, before)))
        .orderBy(asc(jobs.seq));
      return rows.map((r) => r.id);
    },

    async createKey(name, role) {
      const id = `key_${randomBytes(6).toString("hex")}`;
      const secret = `${SECRET_PREFIX}${randomBytes(24).toString("base64url")}`;
      const [row] = await db
        .insert(apiKeys)
        .values({ id, name, role, secretSha256: hashSecret(secret) })
        .returning();
      if (!row) throw new Error(`key ${id} was not stored`);
      return { key: publicKey(row), secret };
    },

    async listKeys() {
      const rows = await db.select().from(apiKeys).orderBy(asc(apiKeys.createdAt), asc(apiKeys.id));
      return rows.map(publicKey);
    },

    async revokeKey(id) {
      return await db.transaction(async (tx) => {
        // Revocations of admin keys one at a time, so two cannot each leave the other last.
        await tx.execute(sql`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK + 1})`);
        const [row] = await tx.select().from(apiKeys).where(eq(apiKeys.id, id));
        if (!row) return null;
        if (row.revokedAt) return publicKey(row);
        if (row.role === "admin") {
          const admins = await tx
            .select({ id: apiKeys.id })
            .from(apiKeys)
            .where(and(eq(apiKeys.role, "admin"), isNull(apiKeys.revokedAt)));
          if (admins.length <= 1) {
            throw new AppError(
              "last_admin",
              `Key "${id}" is the last active admin key; create another admin key before revoking it.`,
              409,
            );
          }
        }
        const [updated] = await tx
          .update(apiKeys)
          .set({ revokedAt: new Date() })
          .where(eq(apiKeys.id, id))
          .returning();
        return publicKey(updated ?? row);
      });
    },

    async findKeyBySecret(secret) {
      const [row] = await db
        .select()
        .from(apiKeys)
        .where(eq(apiKeys.secretSha256, hashSecret(secret)));
      return row && !row.revokedAt ? row : null;
    },

    async keyById(id) {
      const [row] = await db.select().from(apiKeys).where(eq(apiKeys.id, id));
      return row ?? null;
    },

    async countKeys() {
      const [row] = await db.select({ n: sql<number>`count(*)::int` }).from(apiKeys);
      return row?.n ?? 0;
    },

    async insertWebhook(row) {
      await db.insert(webhooks).values(row);
    },

    async dueWebhooks(at, limit) {
      // Several processes send webhooks: each takes its due rows (of finished jobs) with a
      // lease of a minute, longer than one delivery's timeout, so no other sends them meanwhile;
      // the delivery's outcome then sets the row.
      const due = db
        .select({ id: webhooks.id })
        .from(webhooks)
        .innerJoin(jobs, eq(jobs.id, webhooks.jobId))
        .where(
          and(
            eq(webhooks.status, "pending"),
            lte(webhooks.nextAttemptAt, at),
            inArray(jobs.status, TERMINAL_STATUSES),
          ),
        )
        .orderBy(asc(webhooks.nextAttemptAt))
        .limit(limit)
        .for("update", { of: webhooks, skipLocked: true });
      const rows = await db
        .update(webhooks)
        .set({ nextAttemptAt: sql`now() + interval '60 seconds'` })
        .where(inArray(webhooks.id, due))
        .returning();
      return rows.sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
    },

    async setWebhook(id, values) {
      await db.update(webhooks).set(values).where(eq(webhooks.id, id));
    },

    async close() {
      await pool.end();
    },
  };
}
