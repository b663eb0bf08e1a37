// The one place that picks the store from the configuration: without DIFFUSABLE_DATABASE_URL the
// embedded SQLite file in the data folder (no server to start); with it, PostgreSQL for the
// jobs, keys and webhooks, and the work queue every service process takes jobs from
// (store/pg-work-queue.ts, one pg-boss queue per lane). Training runs stay in the SQLite file of
// the process's data folder either way.

import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { kindNamed } from "../pipeline/work/job-kinds.ts";
import { LANE_QUEUES, laneQueue } from "../pipeline/work/job-runner.ts";
import { closeDb, type Db, openDb } from "../store/db.ts";
import { openPgStore, redactUrl } from "../store/pg-store.ts";
import { PgWorkQueue } from "../store/pg-work-queue.ts";
import { sqliteStore } from "../store/sqlite-store.ts";
import type { Store } from "../store/store.ts";
import type { Config } from "./config.ts";

export interface OpenedStore {
  store: Store;
  /** The SQLite file: every table without PostgreSQL, the training runs with it. */
  db: Db;
  /** The shared work queue (PostgreSQL); null: the runner takes jobs from the store. */
  queue: PgWorkQueue | null;
  /** Where the jobs are, for the start-up log (no password). */
  describe: string;
  /** Closes the queue (after the runner stopped), the store and the SQLite file. */
  close(): Promise<void>;
}

/** `keysOnly`: for the CLI's key commands, PostgreSQL without the work queue (a job inserted
 * through such a store would not be queued). */
export async function openStore(
  config: Pick<Config, "dbFile" | "databaseUrl" | "workerTimeoutMs">,
  opts: { keysOnly?: boolean } = {},
): Promise<OpenedStore> {
  const db = openDb(config.dbFile);
  const url = config.databaseUrl;
  if (url === null) {
    return {
      store: sqliteStore(db),
      db,
      queue: null,
      describe: `SQLite ${config.dbFile}`,
      close: async () => closeDb(db),
    };
  }
  if (opts.keysOnly) {
    try {
      const store = await openPgStore(url, { max: 1 });
      return {
        store,
        db,
        queue: null,
        describe: `PostgreSQL ${redactUrl(url)}`,
        async close() {
          await store.close();
          closeDb(db);
        },
      };
    } catch (err) {
      closeDb(db);
      throw err;
    }
  }
  let queue: PgWorkQueue | null = null;
  try {
    queue = await PgWorkQueue.open(url, {
      queue: LANE_QUEUES,
      // Names the process in diffusable_workers and _leases: host, pid, and a nonce.
      workerId: `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`,
      deadAfterMs: config.workerTimeoutMs,
      heartbeatMs: Math.max(100, Math.floor(config.workerTimeoutMs / 5)),
      pollMs: 500,
    });
    const work = queue;
    const store = await openPgStore(url, {
      onJobInserted: async (job, tx) => {
        await work.enqueue(
          { jobId: job.id, kind: job.kind },
          { queue: laneQueue(kindNamed(job.kind).lane), db: tx },
        );
      },
    });
    return {
      store,
      db,
      queue: work,
      describe: `PostgreSQL ${redactUrl(url)}`,
      async close() {
        await work.close();
        await store.close();
        closeDb(db);
      },
    };
  } catch (err) {
    await queue?.close().catch(() => {});
    closeDb(db);
    throw err;
  }
}
