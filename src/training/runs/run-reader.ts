// The run registry (run-store.ts) as the admin comparison reads it (run-compare.ts RunReader).

import type { Db } from "../../store/db.ts";
import type { RunRow } from "../../store/schema.ts";
import type { RunInfo, RunReader } from "./run-compare.ts";
import { getMetrics, getRun, lastEvent, listRuns, metricNames } from "./run-store.ts";

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
  };
}

export function storeRunReader(db: Db): RunReader {
  return {
    listRuns: (opts = {}) =>
      listRuns(db, {
        ...(opts.kind ? { kind: opts.kind } : {}),
        limit: Math.min(opts.limit ?? 100, 500),
      }).runs.map(info),
    getRun: (id) => {
      const row = getRun(db, id);
      return row ? info(row) : null;
    },
    metricNames: (id) => metricNames(db, id),
    getMetrics: (id, name) => getMetrics(db, id, name),
    lastEvent: (id, type) => lastEvent(db, id, type)?.json ?? null,
  };
}
