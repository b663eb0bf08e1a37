// Opening the database: better-sqlite3 in WAL mode with a busy timeout, foreign keys on, and the
// drizzle-kit migrations in migrations/ applied before anything else touches it.

import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import Database from "better-sqlite3";
import { type BetterSQLite3Database, drizzle } from "drizzle-orm/better-sqlite3";
import { migrate } from "drizzle-orm/better-sqlite3/migrator";
import * as schema from "./schema.ts";

export type Db = BetterSQLite3Database<typeof schema> & { $client: Database.Database };

export const MIGRATIONS_DIR = resolve(import.meta.dirname, "../../migrations");

export interface OpenDbOptions {
  busyTimeoutMs?: number;
  migrationsDir?: string;
}

/** Statements kept per connection, by SQL text (least recently used dropped first). */
const STATEMENT_CACHE_SIZE = 256;

/**
 * better-sqlite3 compiles a statement on every `prepare`, and drizzle prepares one for every
 * query it runs: under `bench:load` that compilation was the largest item on the server's main
 * thread (4.3 of 35 CPU s, in stretches of up to 0.8 s). The connection keeps its statements by
 * SQL text instead. A reader's raw mode is reset on each hand-out, since drizzle sets it per
 * query; nothing here iterates a statement, which is the one use a shared statement would break.
 */
function cacheStatements(sqlite: Database.Database): void {
  const prepare = sqlite.prepare.bind(sqlite);
  const cache = new Map<string, Database.Statement>();
  sqlite.prepare = ((source: string) => {
    let stmt = cache.get(source);
    if (stmt) {
      cache.delete(source); // most recently used last
    } else {
      stmt = prepare(source);
      const oldest = cache.size >= STATEMENT_CACHE_SIZE ? cache.keys().next().value : undefined;
      if (oldest !== undefined) cache.delete(oldest);
    }
    cache.set(source, stmt);
    if (stmt.reader) stmt.raw(false);
    return stmt;
  }) as typeof sqlite.prepare;
}

/** Opens (creating if needed) the SQLite file and applies pending migrations. */
export function openDb(file: string, options: OpenDbOptions = {}): Db {
  mkdirSync(dirname(file), { recursive: true });
  const sqlite = new Database(file);
  cacheStatements(sqlite);
  try {
    sqlite.pragma("journal_mode = WAL");
    sqlite.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 5000}`);
    sqlite.pragma("foreign_keys = ON");
    sqlite.pragma("synchronous = NORMAL");
    const db = drizzle(sqlite, { schema });
    const migrationsFolder = options.migrationsDir ?? MIGRATIONS_DIR;
    try {
      migrate(db, { migrationsFolder });
    } catch {
      // Two processes starting on one new file both read "nothing applied" before either takes
      // the write lock; the second then fails on the first's tables. Read again: what the other
      // applied is skipped, and a real error fails the same way a second time.
      migrate(db, { migrationsFolder });
    }
    return db as Db;
  } catch (err) {
    sqlite.close();
    throw new Error(`cannot open database ${file}: ${(err as Error).message}`, { cause: err });
  }
}

const preparedByDb = new WeakMap<Db, Map<string, unknown>>();

/**
 * A query built once per connection under `name` and kept: drizzle builds a query's SQL again on
 * every call (0.2-0.4 ms for a job read, nine times what SQLite itself spends on it;
 * bench:request-cost), a prepared one only binds its `sql.placeholder` values. The queries on
 * the request path (auth, job reads, quota counts, claims, progress) go through here; `name`
 * must say everything that changes the SQL (a list of kinds, the columns set).
 */
export function prepared<T>(db: Db, name: string, build: () => T): T {
  let byName = preparedByDb.get(db);
  if (!byName) {
    byName = new Map();
    preparedByDb.set(db, byName);
  }
  let query = byName.get(name) as T | undefined;
  if (query === undefined) {
    query = build();
    byName.set(name, query);
  }
  return query;
}

export function closeDb(db: Db): void {
  if (db.$client.open) db.$client.close();
}

/** `PRAGMA integrity_check`: "ok" when the file is sound. */
export function integrityCheck(db: Db): string {
  const rows = db.$client.pragma("integrity_check") as { integrity_check: string }[];
  return rows.map((r) => r.integrity_check).join("; ");
}
