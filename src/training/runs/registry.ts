// The run registry of a server process: starts trainers (launch.ts), follows each live run's
// events.jsonl into SQLite (tail.ts + run-ingest.ts, polled), imports folders (run-import.ts), and on
// start re-attaches runs left running by the previous server process or marks them interrupted.
//
// A trainer runs detached: stopping the server stops the following, not the training. On the
// next start a run still marked running is re-attached when its pid is alive, its command line
// names its folder (Linux /proc; elsewhere not checked) and its events.jsonl grew since the last
// read or within `staleAfterMs`; otherwise its unread lines are ingested and it is marked by its
// last status event (completed: finished, failed: failed) or else interrupted.

import type { ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Db } from "../../store/db.ts";
import type { RunRow } from "../../store/schema.ts";
import {
  defaultRunId,
  type StartRunRequest,
  spawnTrainer,
  TRAIN_LOG,
  trainerArgs,
} from "./launch.ts";
import { RunError } from "./run-error.ts";
import { EVENTS_FILE, type ImportResult, importRunFolder } from "./run-import.ts";
import { ingestLines, statusFromEvent } from "./run-ingest.ts";
import { getRun, insertRunIfMissing, lastEvent, runsWithStatus, updateRun } from "./run-store.ts";
import { readNewLines } from "./tail.ts";

export interface RunRegistryOptions {
  db: Db;
  /** Where runs started here are written (<runsDir>/<run id>/). */
  runsDir: string;
  /** Run folders under it are imported on start; null: none. */
  importDir?: string | null;
  /** How often live runs' files are read. */
  pollMs?: number;
  /** On start, a running run whose file has not changed for this long is not re-attached. */
  staleAfterMs?: number;
  log?: (line: string) => void;
}

interface Follower {
  runId: string;
  file: string;
  pid: number | null;
  /** Set when the trainer was started by this process. */
  child?: ChildProcess;
  exit?: { code: number | null; signal: NodeJS.Signals | null; error?: string };
  timer: NodeJS.Timeout;
}

export interface StartupReport {
  reattached: string[];
  interrupted: string[];
  finished: string[];
  imported: string[];
  importFailures: { folder: string; message: string }[];
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Whether the process's command line names the folder (true where /proc cannot tell). */
function pidRunsFolder(pid: number, folder: string): boolean {
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return !existsSync("/proc/self/cmdline");
  }
  return cmdline.split("\0").some((arg) => arg === folder || resolve(arg) === folder);
}

/** The last non-empty line of the trainer's log (its error, when it failed). */
function lastLogLine(folder: string): string | null {
  try {
    const text = readFileSync(join(folder, TRAIN_LOG), "utf8");
    const lines = text.split("\n").filter((l) => l.trim() !== "");
    return lines.at(-1)?.slice(0, 500) ?? null;
  } catch {
    return null;
  }
}

export class RunRegistry {
  readonly db: Db;
  readonly runsDir: string;
  readonly importDir: string | null;
  private readonly pollMs: number;
  private readonly staleAfterMs: number;
  private readonly log: (line: string) => void;
  private readonly followers = new Map<string, Follower>();
  private readonly waiters = new Set<() => void>();
  private stopped = false;

  constructor(options: RunRegistryOptions) {
    this.db = options.db;
    this.runsDir = resolve(options.runsDir);
    this.importDir = options.importDir ? resolve(options.importDir) : null;
    this.pollMs = options.pollMs ?? 500;
    this.staleAfterMs = options.staleAfterMs ?? 15 * 60_000;
    this.log = options.log ?? (() => {});
  }

  /** Re-attaches or settles the runs left running, then imports the import dir's run folders. */
  start(): StartupReport {
    const report: StartupReport = {
      reattached: [],
      interrupted: [],
      finished: [],
      imported: [],
      importFailures: [],
    };
    for (const run of runsWithStatus(this.db, "running")) {
      if (this.followers.has(run.id)) continue;
      if (this.canReattach(run)) {
        this.follow(run.id, join(run.folder, EVENTS_FILE), run.pid);
        report.reattached.push(run.id);
        this.log(`runs: re-attached ${run.id} (pid ${run.pid})`);
        continue;
      }
      const settled = this.settle(run.id, null);
      if (settled.status === "finished") report.finished.push(run.id);
      else report.interrupted.push(run.id);
      this.log(`runs: ${run.id} is ${settled.status}${settled.error ? `: ${settled.error}` : ""}`);
    }
    if (this.importDir && existsSync(this.importDir)) {
      for (const name of readdirSync(this.importDir).sort()) {
        const folder = join(this.importDir, name);
        if (!existsSync(join(folder, EVENTS_FILE))) continue;
        try {
          const r = this.importFolder(folder);
          if (r.added > 0) report.imported.push(r.run.id);
          if (r.rejected.length > 0) {
            this.log(`runs: ${folder}: ${r.rejected.length} line(s) rejected`);
          }
        } catch (err) {
          report.importFailures.push({ folder, message: (err as Error).message });
          this.log(`runs: cannot import ${folder}: ${(err as Error).message}`);
        }
      }
    }
    return report;
  }

  private canReattach(run: RunRow): boolean {
    if (run.pid === null || !pidAlive(run.pid) || !pidRunsFolder(run.pid, run.folder)) return false;
    try {
      const st = statSync(join(run.folder, EVENTS_FILE));
      return st.size > run.bytesRead || Date.now() - st.mtimeMs < this.staleAfterMs;
    } catch {
      // No events yet: the trainer may still be preparing its data.
      return Date.now() - statSync(run.folder).mtimeMs < this.staleAfterMs;
    }
  }

  isLive(runId: string): boolean {
    return this.followers.has(runId);
  }

  liveRuns(): string[] {
    return [...this.followers.keys()];
  }

  importFolder(folder: string): ImportResult {
    return importRunFolder(this.db, folder, { isLive: (id) => this.isLive(id) });
  }

  /** Starts a trainer for a validated request; the run row is returned (status running). */
  startRun(req: StartRunRequest): RunRow {
    if (this.stopped) throw new RunError("registry_stopped", "the server is shutting down", 409);
    let variant: string;
    let aeFolder: string | undefined;
    let aeRunId: string | null = null;
    if (req.kind === "diffusion") {
      const ae = getRun(this.db, req.ae_run_id);
      if (!ae) {
        throw new RunError(
          "unknown_run",
          `ae_run_id: no run ${JSON.stringify(req.ae_run_id)}`,
          404,
        );
      }
      if (ae.kind !== "autoencoder") {
        throw new RunError("invalid_field", `ae_run_id: run ${ae.id} is a ${ae.kind} run`, 400);
      }
      const ckpt = join(ae.folder, "checkpoints", "last.pt");
      if (ae.status !== "finished" || !existsSync(ckpt)) {
        throw new RunError(
          "autoencoder_not_ready",
          `ae_run_id: run ${ae.id} is ${ae.status}${existsSync(ckpt) ? "" : ` and has no ${ckpt}`}; a diffusion run needs a finished autoencoder run with its checkpoint`,
          409,
        );
      }
      variant = ae.variant ?? "unknown";
      aeFolder = ae.folder;
      aeRunId = ae.id;
    } else {
      variant = req.variant;
    }
    const id = req.run_id ?? defaultRunId(req, variant);
    const folder = join(this.runsDir, id);
    if (getRun(this.db, id)) {
      throw new RunError("run_exists", `run_id: a run ${id} exists already`, 409);
    }
    if (existsSync(folder)) {
      throw new RunError("run_exists", `run_id: the folder ${folder} exists already`, 409);
    }
    const args = trainerArgs(req, folder, aeFolder);
    const child = spawnTrainer(args, folder);
    const row = insertRunIfMissing(this.db, {
      id,
      kind: req.kind,
      variant,
      status: "running",
      folder,
      config: { launch: { ...req, args } },
      autoencoderRunId: aeRunId,
      steps: req.steps ?? null,
      startedAt: new Date(),
      source: "local",
      pid: child.pid ?? null,
    });
    const f = this.follow(id, join(folder, EVENTS_FILE), child.pid ?? null, child);
    child.once("error", (err) => {
      f.exit = { code: null, signal: null, error: `cannot start the trainer: ${err.message}` };
      this.tick(f);
    });
    child.once("exit", (code, signal) => {
      f.exit ??= { code, signal };
      this.tick(f);
    });
    this.log(`runs: started ${id} (pid ${child.pid}): python3 ${args.join(" ")}`);
    return row;
  }

  /** Asks a live run's trainer to stop (SIGTERM). Its checkpoints are atomic, so the run can be
   * resumed later from its last checkpoint; it is settled as interrupted when the process ends. */
  stopRun(runId: string): RunRow {
    const run = getRun(this.db, runId);
    if (!run) throw new RunError("not_found", `There is no run ${JSON.stringify(runId)}.`, 404);
    const f = this.followers.get(runId);
    if (run.status !== "running" || !f) {
      throw new RunError("run_not_running", `run ${runId} is ${run.status}, not running here`, 409);
    }
    // Only signal the process that is this run's trainer (a pid can be reused).
    if (f.pid === null || !pidAlive(f.pid) || !pidRunsFolder(f.pid, run.folder)) {
      this.tick(f);
      throw new RunError("run_not_running", `run ${runId}: its trainer is gone`, 409);
    }
    process.kill(f.pid, "SIGTERM");
    this.log(`runs: stopping ${runId} (SIGTERM to pid ${f.pid})`);
    return run;
  }

  private follow(runId: string, file: string, pid: number | null, child?: ChildProcess): Follower {
    const timer = setInterval(() => this.tick(f), this.pollMs);
    timer.unref();
    const f: Follower = { runId, file, pid, child, timer };
    this.followers.set(runId, f);
    setImmediate(() => this.tick(f));
    return f;
  }

  /** Reads what the run wrote since the last read; settles the run when its trainer ended. */
  private tick(f: Follower): void {
    if (this.followers.get(f.runId) !== f) return;
    try {
      const ended = f.child ? f.exit !== undefined : f.pid === null || !pidAlive(f.pid);
      this.readNew(f.runId, f.file);
      if (ended) {
        this.unfollow(f);
        this.settle(f.runId, f.exit ?? null);
      }
    } catch (err) {
      this.log(`runs: ${f.runId}: ${(err as Error).message}`);
    } finally {
      for (const wake of this.waiters) wake();
    }
  }

  private readNew(runId: string, file: string): void {
    const run = getRun(this.db, runId);
    if (!run || !existsSync(file)) return;
    let offset = run.bytesRead;
    let lineCount = run.linesRead;
    for (;;) {
      const chunk = readNewLines(file, offset, lineCount);
      if (chunk.lines.length === 0) return;
      const r = ingestLines(this.db, runId, chunk.lines, {
        mode: "live",
        position: { bytesRead: chunk.offset, linesRead: chunk.lineCount },
      });
      for (const bad of r.rejected) this.log(`runs: ${runId} line ${bad.line}: ${bad.reason}`);
      if (chunk.offset >= chunk.size) return;
      offset = chunk.offset;
      lineCount = chunk.lineCount;
    }
  }

  /** The trainer is gone: ingest what is left and set the final status. */
  private settle(
    runId: string,
    exit: { code: number | null; signal: NodeJS.Signals | null; error?: string } | null,
  ): RunRow {
    const run = getRun(this.db, runId) as RunRow;
    const file = join(run.folder, EVENTS_FILE);
    this.readNew(runId, file);
    let partial = "";
    if (existsSync(file)) {
      const after = readNewLines(file, run.bytesRead, run.linesRead);
      partial = after.partial;
    }
    const current = getRun(this.db, runId) as RunRow;
    if (partial.trim() !== "") {
      this.log(`runs: ${runId} line ${current.linesRead + 1}: truncated last line (no newline)`);
    }
    if (current.status !== "running") {
      if (current.pid !== null) updateRun(this.db, runId, { pid: null });
      return getRun(this.db, runId) as RunRow;
    }
    const last = lastEvent(this.db, runId, "status");
    let { status, error } = statusFromEvent(last?.json ?? null);
    if (status === "interrupted") {
      if (exit?.error) {
        status = "failed";
        error = exit.error;
      } else if (exit && exit.code !== null && exit.code !== 0) {
        status = "failed";
        error = `the trainer exited with code ${exit.code}: ${lastLogLine(current.folder) ?? "(no output)"}`;
      } else if (exit?.signal) {
        error = `the trainer was stopped by ${exit.signal} at step ${current.step}`;
      } else if (exit) {
        error = `the trainer exited at step ${current.step} without a completed status event`;
      } else {
        error = `the trainer (pid ${current.pid ?? "?"}) is gone; it stopped at step ${current.step}`;
      }
    }
    updateRun(this.db, runId, { status, error, pid: null, finishedAt: new Date() });
    return getRun(this.db, runId) as RunRow;
  }

  private unfollow(f: Follower): void {
    clearInterval(f.timer);
    if (this.followers.get(f.runId) === f) this.followers.delete(f.runId);
  }

  /** Resolves when `done()` holds (checked after every read), or rejects after timeoutMs. */
  waitUntil(done: () => boolean, timeoutMs = 60_000): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(wake);
        reject(new Error(`runs: condition not met within ${timeoutMs} ms`));
      }, timeoutMs);
      const wake = () => {
        if (!done()) return;
        clearTimeout(timer);
        this.waiters.delete(wake);
        resolvePromise();
      };
      this.waiters.add(wake);
    });
  }

  /** Stops following (the trainers keep running; the next start re-attaches them). */
  stop(): void {
    this.stopped = true;
    for (const f of [...this.followers.values()]) {
      f.child?.removeAllListeners();
      this.unfollow(f);
    }
  }
}
