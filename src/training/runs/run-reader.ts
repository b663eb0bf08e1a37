// The run registry (run-store.ts) bound to a db, read through one place: the rows as the runs API
// shows them (storeRunRows: routes/runs.ts) and the normalised runs the admin comparison reads
// (storeRunReader: run-compare.ts RunReader), the latter made from the former.

import type { Db } from "../../store/db.ts";
import type { RunArtifactRow, RunKind, RunRow, RunStatus } from "../../store/schema.ts";
import type { RunInfo, RunReader } from "./run-compare.ts";
import {
  diffusionRunsOf,
  getMetrics,
  getRun,
  lastEvent,
  listArtifacts,
  listRuns,
  type MetricPoint,
  metricNames,
} from "./run-store.ts";

/** The registry's rows and their events, metrics and artifacts (reads only). */
export interface RunRows {
  /** Newest first; `cursor` is the last id of the previous page. */
  list(options?: { kind?: RunKind; status?: RunStatus; limit?: number; cursor?: string }): {
    runs: RunRow[];
    nextCursor: string | null;
  };
  get(id: string): RunRow | null;
  metricNames(id: string): string[];
  metrics(id: string, name: string): MetricPoint[];
  lastEvent(id: string, type: string): Record<string, unknown> | null;
  artifacts(id: string): RunArtifactRow[];
  /** The diffusion runs trained on this autoencoder run, oldest first. */
  diffusionRunsOf(aeRunId: string): RunRow[];
}

export function storeRunRows(db: Db): RunRows {
  return {
    list: (options = {}) => listRuns(db, options),
    get: (id) => getRun(db, id),
    metricNames: (id) => metricNames(db, id),
    metrics: (id, name) => getMetrics(db, id, name),
    lastEvent: (id, type) => lastEvent(db, id, type)?.json ?? null,
    artifacts: (id) => listArtifacts(db, id),
    diffusionRunsOf: (id) => diffusionRunsOf(db, id),
  };
}

function info(row: RunRow): RunInfo {
  return {
    id: row.id,
    kind: row.kind,
    variant: row.variant,
    status: row.status,
    autoencoderRunId: row.autoencoderRunId,
    config: row.config,
    createdAt: (row.startedAt ?? row.createdAt).getTime(),
    steps: row.steps,
    folder: row.folder,
  };
}

export function storeRunReader(db: Db): RunReader {
  const rows = storeRunRows(db);
  return {
    listRuns: (opts = {}) =>
      rows
        .list({
          ...(opts.kind ? { kind: opts.kind } : {}),
          limit: Math.min(opts.limit ?? 100, 500),
        })
        .runs.map(info),
    getRun: (id) => {
      const row = rows.get(id);
      return row ? info(row) : null;
    },
    metricNames: rows.metricNames,
    getMetrics: rows.metrics,
    lastEvent: rows.lastEvent,
  };
}
