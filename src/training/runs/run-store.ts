// Training runs in SQLite (docs/runs.md): the run rows, their valid events, numeric metrics by
// step and artifacts. Reads for the API and the admin page; the writes used by the ingester
// (run-ingest.ts), which applies a batch of events in one transaction.
// Synchronous (better-sqlite3).

import { and, asc, desc, eq, lt, or, sql } from "drizzle-orm";
import type { Db } from "../../store/db.ts";
import {
  type ArtifactKind,
  type RunArtifactRow,
  type RunEventRow,
  type RunKind,
  type RunRow,
  type RunStatus,
  runArtifacts,
  runEvents,
  runMetrics,
  runs,
} from "../../store/schema.ts";

/** Anything that runs queries: the database or a transaction on it. */
type Queryable = Pick<Db, "select" | "insert" | "update" | "delete">;

export interface MetricPoint {
  step: number;
  /** Always finite (only finite numbers are stored). */
  value: number;
  /** Unix seconds of the event that carried it. */
  time: number | null;
}

/** The sort key of the run list: when it started (config event), else when the row was made. */
const startedKey = sql<number>`coalesce(${runs.startedAt}, ${runs.createdAt})`;

/**
 * Runs, newest first. `cursor` is the id of the last run of the previous page (nextCursor); an
 * unknown cursor gives an empty page. nextCursor is null on the last page.
 */
export function listRuns(
  db: Db,
  options: { kind?: RunKind; status?: RunStatus; limit?: number; cursor?: string } = {},
): { runs: RunRow[]; nextCursor: string | null } {
  const limit = Math.max(1, Math.min(options.limit ?? 50, 500));
  const conditions = [];
  if (options.kind) conditions.push(eq(runs.kind, options.kind));
  if (options.status) conditions.push(eq(runs.status, options.status));
  if (options.cursor !== undefined) {
    const after = getRun(db, options.cursor);
    if (!after) return { runs: [], nextCursor: null };
    const key = (after.startedAt ?? after.createdAt).getTime();
    conditions.push(or(lt(startedKey, key), and(eq(startedKey, key), lt(runs.id, after.id))));
  }
  const rows = db
    .select()
    .from(runs)
    .where(and(...conditions))
    .orderBy(desc(startedKey), desc(runs.id))
    .limit(limit + 1)
    .all();
  const more = rows.length > limit;
  const page = more ? rows.slice(0, limit) : rows;
  return { runs: page, nextCursor: more ? (page[page.length - 1]?.id ?? null) : null };
}

export function getRun(db: Queryable, id: string): RunRow | null {
  return db.select().from(runs).where(eq(runs.id, id)).get() ?? null;
}

/** Runs with this status (oldest first), e.g. the running ones to re-attach on start. */
export function runsWithStatus(db: Db, status: RunStatus): RunRow[] {
  return db
    .select()
    .from(runs)
    .where(eq(runs.status, status))
    .orderBy(asc(startedKey), asc(runs.id))
    .all();
}

/** The metric names a run has, sorted ("eval/fd_rand3d", "train/loss", "val/psnr", ...). */
export function metricNames(db: Db, runId: string): string[] {
  return db
    .selectDistinct({ name: runMetrics.name })
    .from(runMetrics)
    .where(eq(runMetrics.runId, runId))
    .orderBy(asc(runMetrics.name))
    .all()
    .map((r) => r.name);
}

/** One metric's history, by step; empty when the run or the metric is unknown. */
export function getMetrics(db: Db, runId: string, name: string): MetricPoint[] {
  return db
    .select({ step: runMetrics.step, value: runMetrics.value, time: runMetrics.time })
    .from(runMetrics)
    .where(and(eq(runMetrics.runId, runId), eq(runMetrics.name, name)))
    .orderBy(asc(runMetrics.step))
    .all();
}

/** The run's last valid event of this type (its whole JSON in `json`), or null. */
export function lastEvent(db: Db, runId: string, type: string): RunEventRow | null {
  return (
    db
      .select()
      .from(runEvents)
      .where(and(eq(runEvents.runId, runId), eq(runEvents.type, type)))
      .orderBy(desc(runEvents.seq))
      .limit(1)
      .get() ?? null
  );
}

export function listArtifacts(db: Db, runId: string): RunArtifactRow[] {
  return db
    .select()
    .from(runArtifacts)
    .where(eq(runArtifacts.runId, runId))
    .orderBy(asc(runArtifacts.kind), asc(runArtifacts.path))
    .all();
}

/** The diffusion runs trained on this autoencoder run, oldest first. */
export function diffusionRunsOf(db: Db, aeRunId: string): RunRow[] {
  return db
    .select()
    .from(runs)
    .where(and(eq(runs.autoencoderRunId, aeRunId), eq(runs.kind, "diffusion")))
    .orderBy(asc(startedKey), asc(runs.id))
    .all();
}

/** A run as the API shows it: ISO times, no tail bookkeeping. */
export interface PublicRun {
  id: string;
  kind: RunKind;
  variant: string | null;
  status: RunStatus;
  step: number;
  steps: number | null;
  folder: string;
  source: RunRow["source"];
  autoencoderRunId: string | null;
  pid: number | null;
  error: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  importedAt: string | null;
  updatedAt: string;
  config: Record<string, unknown>;
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function publicRun(row: RunRow): PublicRun {
  return {
    id: row.id,
    kind: row.kind,
    variant: row.variant,
    status: row.status,
    step: row.step,
    steps: row.steps,
    folder: row.folder,
    source: row.source,
    autoencoderRunId: row.autoencoderRunId,
    pid: row.pid,
    error: row.error,
    startedAt: iso(row.startedAt),
    finishedAt: iso(row.finishedAt),
    importedAt: iso(row.importedAt),
    updatedAt: row.updatedAt.toISOString(),
    config: row.config,
  };
}

// ------------------------------------------------------------------ writes (the ingester's)

export type NewRun = typeof runs.$inferInsert;

/** Inserts the run unless a row with its id exists; returns the row either way. */
export function insertRunIfMissing(db: Queryable, run: NewRun): RunRow {
  db.insert(runs).values(run).onConflictDoNothing({ target: runs.id }).run();
  const row = getRun(db, run.id);
  if (!row) throw new Error(`run ${run.id} vanished after insert`);
  return row;
}

export function updateRun(
  db: Queryable,
  id: string,
  values: Partial<Omit<RunRow, "id" | "createdAt">>,
): void {
  db.update(runs)
    .set({ ...values, updatedAt: new Date() })
    .where(eq(runs.id, id))
    .run();
}

/** Stores one event; an event already stored under (run, seq) is left as it is. */
export function insertEvent(
  db: Queryable,
  e: {
    runId: string;
    seq: number;
    type: string;
    step: number | null;
    time: number | null;
    json: Record<string, unknown>;
  },
): boolean {
  return (
    db
      .insert(runEvents)
      .values(e)
      .onConflictDoNothing({ target: [runEvents.runId, runEvents.seq] })
      .returning({ seq: runEvents.seq })
      .all().length > 0
  );
}

/** Sets a metric at a step (a later event for the same step wins, as after a resume). */
export function upsertMetric(
  db: Queryable,
  m: { runId: string; name: string; step: number; value: number; time: number | null },
): void {
  db.insert(runMetrics)
    .values(m)
    .onConflictDoUpdate({
      target: [runMetrics.runId, runMetrics.name, runMetrics.step],
      set: { value: m.value, time: m.time },
    })
    .run();
}

/** Records an artifact; the same (run, kind, path) again updates its sha256 and step. */
export function upsertArtifact(
  db: Queryable,
  a: {
    runId: string;
    kind: ArtifactKind;
    path: string;
    sha256?: string | null;
    step?: number | null;
  },
): void {
  const values = { ...a, sha256: a.sha256 ?? null, step: a.step ?? null };
  db.insert(runArtifacts)
    .values(values)
    .onConflictDoUpdate({
      target: [runArtifacts.runId, runArtifacts.kind, runArtifacts.path],
      set: { sha256: values.sha256, step: values.step },
    })
    .run();
}
