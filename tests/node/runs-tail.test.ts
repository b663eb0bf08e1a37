// Following a growing events.jsonl: partial lines wait for their newline (also mid-character),
// a live run is re-attached after a restart and followed to its end, and runs whose trainer is
// gone (or whose pid now belongs to another program, or whose file went stale) are settled:
// finished when the log ends with a completed status event, interrupted otherwise.

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { closeDb, type Db, openDb } from "../../src/store/db.ts";
import { RunRegistry } from "../../src/training/runs/registry.ts";
import {
  getMetrics,
  getRun,
  insertRunIfMissing,
  updateRun,
} from "../../src/training/runs/run-store.ts";
import { readNewLines } from "../../src/training/runs/tail.ts";
import { tempDir } from "./server-helpers.ts";

let dir: string;
let db: Db;
const children: ChildProcess[] = [];

before(() => {
  dir = tempDir("runs-tail");
  db = openDb(join(dir, "db.sqlite"));
});
after(() => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  closeDb(db);
  rmSync(dir, { recursive: true, force: true });
});

const line = (o: Record<string, unknown>) => `${JSON.stringify(o)}\n`;
const configLine = (runId: string) =>
  line({
    type: "config",
    time: 1000,
    step: 0,
    run_id: runId,
    kind: "autoencoder",
    variant: "se",
    train: { steps: 30 },
  });
const trainLine = (step: number) =>
  line({ type: "train", time: 1000 + step, step, loss: 1 / step, lr: 0.001 });
const completed = (step: number) =>
  line({ type: "status", time: 2000, step, status: "completed", psnr: 20 });

/** A stand-in trainer: a process that sleeps, with the run folder in its command line. */
function sleeper(folder: string): ChildProcess {
  const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)", folder], {
    stdio: "ignore",
  });
  children.push(child);
  return child;
}

async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
  await new Promise((r) => child.once("exit", r));
  return child.pid as number;
}

function runningRow(runId: string, pid: number | null): string {
  const folder = join(dir, "runs", runId);
  mkdirSync(folder, { recursive: true });
  insertRunIfMissing(db, {
    id: runId,
    kind: "autoencoder",
    variant: "se",
    status: "running",
    folder,
    config: { launch: { kind: "autoencoder" } },
    source: "local",
    pid,
    startedAt: new Date(),
  });
  return folder;
}

test("readNewLines returns whole lines only, across writes cut anywhere", () => {
  const file = join(dir, "grow.jsonl");
  writeFileSync(file, '{"a":1}\n{"b":');
  let c = readNewLines(file, 0, 0);
  assert.deepEqual(c.lines, [{ line: 1, text: '{"a":1}' }]);
  assert.equal(c.offset, 8);
  assert.equal(c.partial, '{"b":');
  c = readNewLines(file, c.offset, c.lineCount);
  assert.deepEqual(c.lines, []);
  // "é" is two bytes in UTF-8: write them in two appends.
  const e = Buffer.from("é", "utf8");
  appendFileSync(file, Buffer.concat([Buffer.from('"'), e.subarray(0, 1)]));
  c = readNewLines(file, c.offset, c.lineCount);
  assert.deepEqual(c.lines, []);
  appendFileSync(file, Buffer.concat([e.subarray(1), Buffer.from('"}\n\n{"c":3}\n')]));
  c = readNewLines(file, c.offset, c.lineCount);
  assert.deepEqual(c.lines, [
    { line: 2, text: '{"b":"é"}' },
    { line: 3, text: "" },
    { line: 4, text: '{"c":3}' },
  ]);
  assert.equal(c.partial, "");
  assert.equal(c.offset, c.size);
});

test("a run left running is re-attached on start and followed to its end", async () => {
  const folder = join(dir, "runs", "ae-live");
  mkdirSync(folder, { recursive: true });
  const trainer = sleeper(folder);
  runningRow("ae-live", trainer.pid as number);
  const file = join(folder, "events.jsonl");
  // Written before the restart, plus half a line.
  writeFileSync(file, configLine("ae-live") + trainLine(10) + trainLine(20).slice(0, 25));
  const registry = new RunRegistry({ db, runsDir: join(dir, "runs"), pollMs: 50 });
  const report = registry.start();
  assert.deepEqual(report.reattached, ["ae-live"]);
  assert.ok(registry.isLive("ae-live"));
  await registry.waitUntil(() => getRun(db, "ae-live")?.linesRead === 2, 10_000);
  let run = getRun(db, "ae-live");
  assert.equal(run?.status, "running");
  assert.equal(run?.step, 10);
  assert.equal(run?.steps, 30);
  assert.equal(run?.config.run_id, "ae-live");
  // The rest of the half line, then more.
  appendFileSync(file, trainLine(20).slice(25));
  await registry.waitUntil(() => getRun(db, "ae-live")?.step === 20, 10_000);
  appendFileSync(file, trainLine(30) + completed(30));
  await registry.waitUntil(() => getRun(db, "ae-live")?.status === "finished", 10_000);
  assert.deepEqual(
    getMetrics(db, "ae-live", "train/loss").map((p) => p.step),
    [10, 20, 30],
  );
  // The trainer exits: following stops, the pid is forgotten.
  trainer.kill("SIGTERM");
  await registry.waitUntil(() => !registry.isLive("ae-live"), 10_000);
  run = getRun(db, "ae-live");
  assert.equal(run?.status, "finished");
  assert.equal(run?.pid, null);
  registry.stop();
});

test("on start, runs whose trainer is gone are settled by their log", async () => {
  const dead = await deadPid();
  // Gone, log cut short: interrupted.
  const a = runningRow("ae-gone", dead);
  writeFileSync(join(a, "events.jsonl"), configLine("ae-gone") + trainLine(10));
  // Gone, but the log (not read yet) ends with a completed status event: finished.
  const b = runningRow("ae-done", dead);
  writeFileSync(join(b, "events.jsonl"), configLine("ae-done") + trainLine(10) + completed(30));
  // A live pid that is another program (this test process): not re-attached.
  const c = runningRow("ae-reused-pid", process.pid);
  writeFileSync(join(c, "events.jsonl"), configLine("ae-reused-pid"));
  // The right program, but its log has not grown for longer than staleAfterMs.
  const d = join(dir, "runs", "ae-stale");
  mkdirSync(d, { recursive: true });
  const stuck = sleeper(d);
  runningRow("ae-stale", stuck.pid as number);
  writeFileSync(join(d, "events.jsonl"), configLine("ae-stale"));
  // As if the previous server process had read it all.
  updateRun(db, "ae-stale", { bytesRead: configLine("ae-stale").length, linesRead: 1 });
  await new Promise((r) => setTimeout(r, 50));

  const registry = new RunRegistry({
    db,
    runsDir: join(dir, "runs"),
    pollMs: 50,
    staleAfterMs: 10,
  });
  const report = registry.start();
  assert.deepEqual(report.reattached, []);
  assert.deepEqual(report.finished, ["ae-done"]);
  assert.deepEqual(report.interrupted.sort(), ["ae-gone", "ae-reused-pid", "ae-stale"]);
  const gone = getRun(db, "ae-gone");
  assert.equal(gone?.status, "interrupted");
  assert.equal(gone?.step, 10);
  assert.equal(gone?.pid, null);
  assert.match(gone?.error ?? "", /is gone; it stopped at step 10/);
  const done = getRun(db, "ae-done");
  assert.equal(done?.status, "finished");
  assert.equal(done?.step, 30);
  assert.equal(done?.error, null);
  assert.equal(getRun(db, "ae-reused-pid")?.status, "interrupted");
  assert.equal(getRun(db, "ae-stale")?.status, "interrupted");
  registry.stop();
});
