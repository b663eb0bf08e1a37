// Importing a run folder made elsewhere (a GPU machine, docs/results/runs): its events.jsonl is
// read whole and applied in one transaction. Keyed by run_id and line number, so importing the
// same folder again adds nothing. A damaged file keeps every valid event and reports the rest,
// a truncated last line (no newline, not valid JSON) included.

import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import type { Db } from "../../store/db.ts";
import type { ArtifactKind, RunRow } from "../../store/schema.ts";
import { RunError } from "./run-error.ts";
import { configFacts, parseEventLine } from "./run-events.ts";
import { ingestLines, type RejectedLine } from "./run-ingest.ts";
import { getRun, insertRunIfMissing, updateRun, upsertArtifact } from "./run-store.ts";
import { readNewLines, type TailLine } from "./tail.ts";

export const EVENTS_FILE = "events.jsonl";

/** An interrupted log changed less than this long ago may still be being written. */
const RECENT_S = 300;

const STATUS_OF = {
  folder_not_found: 404,
  not_a_folder: 400,
  no_events_file: 400,
  no_config_event: 400,
  run_is_live: 409,
} as const;

export type ImportErrorCode = keyof typeof STATUS_OF;

/** Why a folder cannot be imported (a RunError with one of the codes above). */
export class ImportError extends RunError {
  constructor(code: ImportErrorCode, message: string) {
    super(code, message, STATUS_OF[code]);
  }
}

export interface ImportResult {
  run: RunRow;
  /** Valid events in the file. */
  accepted: number;
  /** Events stored by this import (0 when the folder was imported before). */
  added: number;
  rejected: RejectedLine[];
}

/** Every line of a complete file; a last line without a newline is kept when it parses. */
export function readWholeLog(file: string): {
  lines: TailLine[];
  truncated: RejectedLine | null;
  size: number;
} {
  const chunk = readNewLines(file, 0, 0, Number.MAX_SAFE_INTEGER);
  const lines = [...chunk.lines];
  let truncated: RejectedLine | null = null;
  if (chunk.partial.trim() !== "") {
    const line = chunk.lineCount + 1;
    const parsed = parseEventLine(chunk.partial);
    if (parsed.ok) lines.push({ line, text: chunk.partial });
    else truncated = { line, reason: `truncated last line (no newline): ${parsed.reason}` };
  }
  return { lines, truncated, size: chunk.size };
}

const sha256File = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

/** Files beside the events that the run made: spectra and logs (paths relative to the folder;
 * the trainer's console log `<folder>.log` beside the folder is recorded absolute). */
function folderArtifacts(folder: string): { kind: ArtifactKind; path: string; abs: string }[] {
  const found: { kind: ArtifactKind; path: string; abs: string }[] = [];
  const look = (rel: string) => {
    const abs = join(folder, rel);
    let names: string[];
    try {
      names = readdirSync(abs);
    } catch {
      return;
    }
    for (const name of names.sort()) {
      const path = rel ? `${rel}/${name}` : name;
      if (!statSync(join(folder, path)).isFile()) continue;
      if (
        /^spectrum.*\.(json|png)$/.test(name) ||
        (rel === "spectrum" && /\.(json|png)$/.test(name))
      ) {
        found.push({ kind: "spectrum", path, abs: join(folder, path) });
      } else if (name.endsWith(".log")) {
        found.push({ kind: "log", path, abs: join(folder, path) });
      }
    }
  };
  look("");
  look("spectrum");
  const sibling = join(dirname(folder), `${basename(folder)}.log`);
  try {
    if (statSync(sibling).isFile()) found.push({ kind: "log", path: sibling, abs: sibling });
  } catch {
    // no console log beside the folder
  }
  return found;
}

/** Records the folder's spectrum and log files (with sha256) for a run. */
export function recordFolderArtifacts(db: Db, runId: string, folder: string): void {
  for (const a of folderArtifacts(folder)) {
    upsertArtifact(db, { runId, kind: a.kind, path: a.path, sha256: sha256File(a.abs) });
  }
}

/**
 * Imports the run in `folder` (relative paths from the current directory). `isLive(id)` says
 * whether that run is being followed here now (then the import is refused with run_is_live).
 */
export function importRunFolder(
  db: Db,
  folderArg: string,
  options: { isLive?: (runId: string) => boolean } = {},
): ImportResult {
  const folder = resolve(folderArg);
  let isDir: boolean;
  try {
    isDir = statSync(folder).isDirectory();
  } catch {
    throw new ImportError("folder_not_found", `path: no such folder ${folder}`);
  }
  if (!isDir) throw new ImportError("not_a_folder", `path: ${folder} is not a folder`);
  const file = join(folder, EVENTS_FILE);
  try {
    statSync(file);
  } catch {
    throw new ImportError("no_events_file", `path: ${folder} has no ${EVENTS_FILE}`);
  }
  const { lines, truncated, size } = readWholeLog(file);
  let config: Record<string, unknown> | null = null;
  for (const { text } of lines) {
    const parsed = parseEventLine(text);
    if (parsed.ok && parsed.event.type === "config") {
      config = parsed.event.json;
      break;
    }
  }
  if (!config) {
    throw new ImportError(
      "no_config_event",
      `path: ${file} has no valid config event (its first line must be one)`,
    );
  }
  const facts = configFacts(config);
  if (options.isLive?.(facts.runId)) {
    throw new ImportError(
      "run_is_live",
      `run ${facts.runId} is running here; it is being ingested already`,
    );
  }
  const result = db.transaction((txn) => {
    const tx = txn as unknown as Db;
    insertRunIfMissing(tx, {
      id: facts.runId,
      kind: facts.kind,
      variant: facts.variant,
      status: "interrupted",
      folder,
      config,
      autoencoderRunId: facts.autoencoderRunId,
      steps: facts.steps,
      startedAt: new Date(Math.round((config.time as number) * 1000)),
      importedAt: new Date(),
      source: "import",
    });
    const batch = ingestLines(tx, facts.runId, lines, {
      mode: "import",
      position: { bytesRead: size, linesRead: lines.at(-1)?.line ?? 0 },
    });
    if (batch.added > 0) recordFolderArtifacts(tx, facts.runId, folder);
    return batch;
  });
  let run = result.run;
  const ageS = Math.round((Date.now() - statSync(file).mtimeMs) / 1000);
  if (result.added > 0 && run.status === "interrupted" && ageS < RECENT_S) {
    // Probably a run still being written elsewhere: importing again later adds its new lines.
    updateRun(db, run.id, {
      error: `${run.error}; the file changed ${ageS} s ago: it may still be written (import again to add new lines)`,
    });
    run = getRun(db, run.id) as RunRow;
  }
  const rejected = truncated ? [...result.rejected, truncated] : result.rejected;
  return { run, accepted: result.accepted, added: result.added, rejected };
}
