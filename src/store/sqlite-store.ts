// The Store (store.ts) on the embedded SQLite file, the default: the synchronous functions of
// job-rows.ts and api-keys.ts behind the asynchronous interface. Each method does its work before
// it returns, so a caller that does not await between two calls sees them happen in order.

import { and, asc, eq, lte, sql } from "drizzle-orm";
import { countKeys, createKey, findKeyBySecret, keyById, listKeys, revokeKey } from "./api-keys.ts";
import { closeDb, type Db, prepared } from "./db.ts";
import * as rows from "./job-rows.ts";
import { webhooks } from "./schema.ts";
import type { Store } from "./store.ts";

// An async method whose body throws returns a rejected promise, as a PostgreSQL store's would.
const now = <T>(f: () => T): Promise<T> => {
  try {
    return Promise.resolve(f());
  } catch (err) {
    return Promise.reject(err);
  }
};

export function sqliteStore(db: Db): Store & { db: Db } {
  return {
    dialect: "sqlite",
    db,
    insertJob: (job) => now(() => rows.insertJob(db, job)),
    getJob: (id) => now(() => rows.getJob(db, id)),
    getItem: (jobId, index) => now(() => rows.getItem(db, jobId, index)),
    jobByIdempotencyKey: (keyId, kind, key) =>
      now(() => rows.jobByIdempotencyKey(db, keyId, kind, key)),
    countJobs: (kinds, statuses, keyId) => now(() => rows.countJobs(db, kinds, statuses, keyId)),
    claimNextJob: (kinds) => now(() => rows.claimNextJob(db, kinds)),
    claimJob: (id) => now(() => rows.claimJob(db, id)),
    setItem: (jobId, index, values) => now(() => rows.setItem(db, jobId, index, values)),
    setJob: (id, values) => now(() => rows.setJob(db, id, values)),
    cancelJob: (id) => now(() => rows.cancelJob(db, id)),
    jobsWithStatus: (status) => now(() => rows.jobsWithStatus(db, status)),
    statusesOf: (ids) => now(() => rows.statusesOf(db, ids)),
    listJobs: (filter) => now(() => rows.listJobs(db, filter)),
    deleteJob: (id) => now(() => rows.deleteJob(db, id)),
    finishedJobsBefore: (before) => now(() => rows.finishedJobsBefore(db, before)),

    createKey: (name, role) => now(() => createKey(db, name, role)),
    listKeys: () => now(() => listKeys(db)),
    revokeKey: (id) => now(() => revokeKey(db, id)),
    findKeyBySecret: (secret) => now(() => findKeyBySecret(db, secret)),
    keyById: (id) => now(() => keyById(db, id)),
    countKeys: () => now(() => countKeys(db)),

    insertWebhook: (row) => now(() => void db.insert(webhooks).values(row).run()),
    dueWebhooks: (at, limit) =>
      now(
        () =>
          prepared(db, "dueWebhooks", () =>
            db
              .select()
              .from(webhooks)
              .where(
                and(
                  eq(webhooks.status, "pending"),
                  lte(webhooks.nextAttemptAt, sql.placeholder("at")),
                ),
              )
              .orderBy(asc(webhooks.nextAttemptAt))
              .limit(sql.placeholder("limit"))
              .prepare(),
          ).all({ at: at.getTime(), limit }), // a placeholder in a where is bound as is: ms, as stored
      ),
    setWebhook: (id, values) =>
      now(() => void db.update(webhooks).set(values).where(eq(webhooks.id, id)).run()),

    close: () => now(() => closeDb(db)),
  };
}
