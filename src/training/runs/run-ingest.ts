// Applying lines of a run's events.jsonl to SQLite, one transaction per batch: every valid event
// is stored under (run, line number), so a line applied twice is a no-op; new events update the
// run (step, config, status), its metrics and its artifacts. Bad lines are reported, not stored.

import type { Db } from "../../store/db.ts";
import type { RunRow, RunStatus } from "../../store/schema.ts";
import { configFacts, eventMetrics, parseEventLine, type RunEvent } from "./run-events.ts";
import {
  getRun,
  insertEvent,
  lastEvent,
  updateRun,
  upsertArtifact,
  upsertMetric,
} from "./run-store.ts";
import type { TailLine } from "./tail.ts";

export interface RejectedLine {
  line: number;
  reason: string;
}

export interface BatchResult {
  /** Valid events in the batch (stored now or before). */
  accepted: number;
  /** Of those, events not stored before. */
  added: number;
  rejected: RejectedLine[];
  run: RunRow;
}

export interface BatchOptions {
  /** "live": a running trainer writes the file; "import": the file is complete (a run made
   * elsewhere); its status then comes from its last status event. */
  mode: "live" | "import";
  /** The tail position after this batch (stored with the events, in the same transaction). */
  position?: { bytesRead: number; linesRead: number };
}

/** The status a finished file implies: its last status event, else interrupted. */
function statusFromEvent(event: Record<string, unknown> | null): {
  status: RunStatus;
  error: string | null;
} {
  const s = event?.status;
  if (s === "completed") return { status: "finished", error: null };
  if (s === "failed") return { status: "failed", error: failureText(event ?? {}) };
  return {
    status: "interrupted",
    error: "the log ends without a completed or failed status event",
  };
}

function failureText(event: Record<string, unknown>): string {
  for (const key of ["error", "message", "reason"]) {
    if (typeof event[key] === "string") return event[key] as string;
  }
  return "the trainer reported failure";
}

const secondsToDate = (t: number) => new Date(Math.round(t * 1000));

/** Applies the side effects of one newly stored event. */
function applyEvent(tx: Db, run: RunRow, event: RunEvent, live: boolean): Partial<RunRow> {
  const e = event.json;
  const changes: Partial<RunRow> = {};
  switch (event.type) {
    case "config":
      if (!("run_id" in run.config)) {
        // The first config event of a run started here replaces the launch request.
        const facts = configFacts(e);
        Object.assign(changes, {
          config: { ...e, launch: run.config.launch ?? undefined },
          kind: facts.kind,
          variant: facts.variant ?? run.variant,
          autoencoderRunId: facts.autoencoderRunId,
          steps: facts.steps,
          startedAt: secondsToDate(event.time),
        });
      }
      break;
    case "status":
      if (e.status === "completed" || e.status === "failed") {
        const { status, error } = statusFromEvent(e);
        Object.assign(changes, { status, error, finishedAt: secondsToDate(event.time) });
      } else if (live && (e.status === "started" || e.status === "resumed")) {
        Object.assign(changes, { status: "running", error: null, finishedAt: null });
      }
      break;
    case "checkpoint":
      upsertArtifact(tx, {
        runId: run.id,
        kind: "checkpoint",
        path: e.path as string,
        step: event.step,
      });
      break;
    case "export": {
      upsertArtifact(tx, {
        runId: run.id,
        kind: "bundle",
        path: e.path as string,
        step: event.step,
      });
      const files = (e.files ?? {}) as Record<string, { sha256?: string }>;
      for (const [name, info] of Object.entries(files)) {
        upsertArtifact(tx, {
          runId: run.id,
          kind: "export",
          path: `${e.path as string}/${name}`,
          sha256: info.sha256 ?? null,
          step: event.step,
        });
      }
      break;
    }
    default:
      for (const m of eventMetrics(event)) {
        upsertMetric(tx, {
          runId: run.id,
          name: m.name,
          step: event.step as number,
          value: m.value,
          time: event.time,
        });
      }
  }
  return changes;
}

/**
 * Applies complete lines (from readNewLines) of run `runId`'s events.jsonl, which must already
 * have its row. Blank lines are skipped; a config event for another run id is rejected.
 */
export function ingestLines(
  db: Db,
  runId: string,
  lines: readonly TailLine[],
  options: BatchOptions,
): BatchResult {
  return db.transaction((txn) => {
    const tx = txn as unknown as Db;
    let run = getRun(tx, runId);
    if (!run) throw new Error(`ingest: no run ${runId}`);
    const rejected: RejectedLine[] = [];
    let accepted = 0;
    let added = 0;
    let maxStep = run.step;
    for (const { line, text } of lines) {
      if (text.trim() === "") continue;
      const parsed = parseEventLine(text);
      if (!parsed.ok) {
        rejected.push({ line, reason: parsed.reason });
        continue;
      }
      const event = parsed.event;
      if (event.type === "config" && event.json.run_id !== runId) {
        rejected.push({
          line,
          reason: `config event: run_id ${JSON.stringify(event.json.run_id)} is not this run's (${runId})`,
        });
        continue;
      }
      accepted += 1;
      const isNew = insertEvent(tx, {
        runId,
        seq: line,
        type: event.type,
        step: event.step,
        time: event.time,
        json: event.json,
      });
      if (!isNew) continue;
      added += 1;
      if (event.step !== null) maxStep = Math.max(maxStep, event.step);
      const changes = applyEvent(tx, run, event, options.mode === "live");
      if (Object.keys(changes).length > 0) {
        updateRun(tx, runId, changes);
        run = getRun(tx, runId) as RunRow;
      }
    }
    const final: Partial<RunRow> = {};
    if (maxStep !== run.step) final.step = maxStep;
    if (
      options.position &&
      (options.position.bytesRead !== run.bytesRead || options.position.linesRead !== run.linesRead)
    ) {
      final.bytesRead = options.position.bytesRead;
      final.linesRead = options.position.linesRead;
    }
    if (options.mode === "import" && added > 0) {
      const last = lastEvent(tx, runId, "status");
      const { status, error } = statusFromEvent(last?.json ?? null);
      final.status = status;
      final.error = error;
      final.pid = null;
      if (status !== "interrupted" && last?.time != null) {
        final.finishedAt = secondsToDate(last.time);
      }
    }
    if (Object.keys(final).length > 0) updateRun(tx, runId, final);
    return { accepted, added, rejected, run: getRun(tx, runId) as RunRow };
  });
}

export { statusFromEvent };
