// The run registry's store and ingest on real recorded logs (tests/node/fixtures/recorded-runs): every metric and
// link lands in SQLite, importing twice changes nothing, and a damaged events.jsonl keeps every
// valid event and reports each bad line with its reason.

import assert from "node:assert/strict";
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { closeDb, type Db, openDb } from "../../src/store/db.ts";
import { eventMetrics, parseEventLine } from "../../src/training/runs/run-events.ts";
import { ImportError, importRunFolder } from "../../src/training/runs/run-import.ts";
import {
  diffusionRunsOf,
  getMetrics,
  getRun,
  lastEvent,
  listArtifacts,
  listRuns,
  metricNames,
} from "../../src/training/runs/run-store.ts";
import { REPO_ROOT } from "./python.ts";
import { tempDir } from "./server-helpers.ts";

const SHIPPED = join(REPO_ROOT, "tests/node/fixtures/recorded-runs");
const RUN_NAMES = ["ae-small-baseline", "ae-small-se", "dit-small-baseline", "dit-small-se"];

let dir: string;
let db: Db;

before(() => {
  dir = tempDir("runs-ingest");
  db = openDb(join(dir, "db.sqlite"));
});
after(() => {
  closeDb(db);
  rmSync(dir, { recursive: true, force: true });
});

const fileEvents = (name: string) =>
  readFileSync(join(SHIPPED, name, "events.jsonl"), "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

const count = (table: string, runId: string) =>
  (
    db.$client.prepare(`SELECT count(*) AS n FROM ${table} WHERE run_id = ?`).get(runId) as {
      n: number;
    }
  ).n;

test("parseEventLine classifies bad lines with a reason", () => {
  assert.equal(parseEventLine('{"type":"train","time":1,"step":3,"loss":0.5}').ok, true);
  const reasons = [
    '{"type":"train","time":1,"step":3,"loss":0.5', // truncated
    "[1,2]",
    '{"type":"weights","time":1,"step":3}',
    '{"type":"train","time":1}',
    '{"type":"config","time":1,"step":0,"kind":"autoencoder"}',
    '{"time":1,"step":3}',
  ].map((l) => {
    const r = parseEventLine(l);
    assert.equal(r.ok, false, l);
    return (r as { reason: string }).reason;
  });
  assert.match(reasons[0] as string, /^bad JSON/);
  assert.equal(reasons[1], "not a JSON object");
  assert.equal(reasons[2], 'unknown event type "weights"');
  assert.match(reasons[3] as string, /^train event: step: /);
  assert.match(reasons[4] as string, /^config event: run_id: /);
  assert.match(reasons[5] as string, /^type: /);
  // Metrics: top-level finite numbers only (null = NaN written by the trainer, strings, lists out).
  const ev = parseEventLine(
    '{"type":"val","time":1,"step":200,"psnr":13.2,"ssim":null,"name":"x","spec":[1,2],"clips":80}',
  );
  assert.ok(ev.ok);
  assert.deepEqual(eventMetrics(ev.event), [
    { name: "val/psnr", value: 13.2 },
    { name: "val/clips", value: 80 },
  ]);
});

test("the shipped runs import with every metric, artifact and the AE -> diffusion links", () => {
  for (const name of RUN_NAMES) {
    const r = importRunFolder(db, join(SHIPPED, name));
    const events = fileEvents(name);
    assert.equal(r.accepted, events.length, name);
    assert.equal(r.added, events.length, name);
    assert.deepEqual(r.rejected, [], name);
    assert.equal(r.run.id, name);
    assert.equal(r.run.status, "finished");
    assert.equal(r.run.step, 1200);
    assert.equal(r.run.steps, 1200);
    assert.equal(r.run.source, "import");
    assert.equal(count("run_events", name), events.length);
  }
  const ae = getRun(db, "ae-small-se");
  assert.equal(ae?.kind, "autoencoder");
  assert.equal(ae?.variant, "se");
  const dit = getRun(db, "dit-small-se");
  assert.equal(dit?.kind, "diffusion");
  assert.equal(dit?.variant, "se");
  assert.equal(dit?.autoencoderRunId, "ae-small-se");
  assert.deepEqual(
    diffusionRunsOf(db, "ae-small-se").map((r) => r.id),
    ["dit-small-se"],
  );
  assert.deepEqual(
    diffusionRunsOf(db, "ae-small-baseline").map((r) => r.id),
    ["dit-small-baseline"],
  );

  // The FD history is the file's eval events, in step order.
  const evals = fileEvents("dit-small-se").filter((e) => e.type === "eval");
  assert.deepEqual(
    getMetrics(db, "dit-small-se", "eval/fd_rand3d"),
    evals.map((e) => ({ step: e.step, value: e.fd_rand3d, time: e.time })),
  );
  assert.ok(metricNames(db, "dit-small-se").includes("eval/class_score"));
  const names = metricNames(db, "ae-small-se");
  for (const n of ["train/loss", "train/lr", "val/psnr", "val/ssim", "val/latent_hf_share"]) {
    assert.ok(names.includes(n), n);
  }
  assert.ok(names.includes("val/psnr_drop_latent_lowpass"));
  const trains = fileEvents("ae-small-se").filter((e) => e.type === "train");
  assert.equal(getMetrics(db, "ae-small-se", "train/loss").length, trains.length);

  // Spectra stay whole in the events.
  const spectrum = lastEvent(db, "ae-small-se", "spectrum");
  assert.equal(spectrum?.step, 1200);
  assert.equal((spectrum?.json.latent_spectrum as number[] | undefined)?.length, 64);
  const status = lastEvent(db, "dit-small-se", "status");
  assert.equal(status?.json.status, "completed");

  const artifacts = listArtifacts(db, "ae-small-se");
  const byKind = (k: string) => artifacts.filter((a) => a.kind === k).map((a) => a.path);
  assert.deepEqual(byKind("checkpoint"), ["checkpoints/last.pt"]);
  assert.deepEqual(byKind("bundle"), ["models/small-se"]);
  assert.ok(byKind("export").includes("models/small-se/encoder.onnx"));
  assert.deepEqual(byKind("spectrum"), ["spectrum.json", "spectrum.png"]);
  assert.match(artifacts.find((a) => a.path === "spectrum.json")?.sha256 ?? "", /^[0-9a-f]{64}$/);
});

test("importing the same folder again adds nothing", () => {
  const before = db.$client.prepare("SELECT * FROM runs WHERE id = 'dit-small-se'").get() as Record<
    string,
    unknown
  >;
  const tables = ["run_events", "run_metrics", "run_artifacts"];
  const counts = tables.map((t) => count(t, "dit-small-se"));
  const r = importRunFolder(db, join(SHIPPED, "dit-small-se"));
  assert.equal(r.added, 0);
  assert.equal(r.accepted, fileEvents("dit-small-se").length);
  assert.deepEqual(
    tables.map((t) => count(t, "dit-small-se")),
    counts,
  );
  assert.deepEqual(
    db.$client.prepare("SELECT * FROM runs WHERE id = 'dit-small-se'").get(),
    before,
  );
});

test("listRuns pages newest first, by kind", () => {
  const all = listRuns(db, { limit: 500 }).runs.map((r) => r.id);
  // Started (config event time): ae-small-* together, then dit-small-baseline, dit-small-se.
  assert.deepEqual(all, ["dit-small-se", "dit-small-baseline", "ae-small-baseline", "ae-small-se"]);
  const first = listRuns(db, { limit: 3 });
  assert.deepEqual(
    first.runs.map((r) => r.id),
    all.slice(0, 3),
  );
  assert.equal(first.nextCursor, all[2]);
  const second = listRuns(db, { limit: 3, cursor: first.nextCursor as string });
  assert.deepEqual(
    second.runs.map((r) => r.id),
    all.slice(3),
  );
  assert.equal(second.nextCursor, null);
  assert.deepEqual(
    listRuns(db, { kind: "diffusion" }).runs.map((r) => r.id),
    ["dit-small-se", "dit-small-baseline"],
  );
});

test("a damaged events.jsonl keeps every valid event and reports the rest", () => {
  const folder = join(dir, "damaged", "ae-damaged");
  mkdirSync(folder, { recursive: true });
  const lines = readFileSync(join(SHIPPED, "ae-small-se", "events.jsonl"), "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => l.replace('"run_id":"ae-small-se"', '"run_id":"ae-damaged"'));
  assert.equal(lines.length, 83);
  const damaged = [
    ...lines.slice(0, 10),
    '{"type":"train","time":1795553100.0,"step":', // line 11: cut in the middle
    "this is not json", // 12
    '{"type":"gradient_histogram","time":1795553100.0,"step":40,"bins":[1,2]}', // 13
    '{"type":"val","time":1795553100.0,"psnr":12.0}', // 14: no step
    "", // 15: blank, skipped without a report
    ...lines.slice(10), // 16..88
    '{"type":"train","time":1795555700.0,"step":1201,"loss":0.1', // 89: truncated, no newline
  ];
  writeFileSync(
    join(folder, "events.jsonl"),
    `${damaged.slice(0, -1).join("\n")}\n${damaged.at(-1)}`,
  );
  const r = importRunFolder(db, folder);
  assert.equal(r.accepted, 83);
  assert.equal(r.added, 83);
  assert.deepEqual(
    r.rejected.map((x) => x.line),
    [11, 12, 13, 14, 89],
  );
  const reasons = r.rejected.map((x) => x.reason);
  assert.match(reasons[0] as string, /^bad JSON/);
  assert.match(reasons[1] as string, /^bad JSON/);
  assert.equal(reasons[2], 'unknown event type "gradient_histogram"');
  assert.match(reasons[3] as string, /^val event: step: /);
  assert.match(reasons[4] as string, /^truncated last line \(no newline\): bad JSON/);
  assert.equal(count("run_events", "ae-damaged"), 83);
  assert.equal(r.run.status, "finished");
  assert.equal(r.run.step, 1200);
  assert.deepEqual(
    getMetrics(db, "ae-damaged", "val/psnr").map((p) => p.value),
    getMetrics(db, "ae-small-se", "val/psnr").map((p) => p.value),
  );
  // Again: the same report, nothing added.
  const again = importRunFolder(db, folder);
  assert.equal(again.added, 0);
  assert.deepEqual(again.rejected, r.rejected);
});

test("a log without a completed status event imports as interrupted", () => {
  const folder = join(dir, "cut", "dit-cut");
  mkdirSync(folder, { recursive: true });
  const lines = fileEvents("dit-small-se")
    .slice(0, 12)
    .map((e) => JSON.stringify(e.type === "config" ? { ...e, run_id: "dit-cut" } : e));
  writeFileSync(join(folder, "events.jsonl"), `${lines.join("\n")}\n`);
  const r = importRunFolder(db, folder);
  assert.equal(r.run.status, "interrupted");
  assert.match(r.run.error ?? "", /without a completed or failed status event/);
  assert.equal(r.run.autoencoderRunId, "ae-small-se");
  // Same start time as dit-small-se (the same config event): then by id.
  assert.deepEqual(
    diffusionRunsOf(db, "ae-small-se").map((x) => x.id),
    ["dit-cut", "dit-small-se"],
  );
});

test("folders that cannot be imported are refused with a code naming the problem", () => {
  const expectCode = (folder: string, code: string, status: number) => {
    assert.throws(
      () => importRunFolder(db, folder),
      (err: unknown) =>
        err instanceof ImportError &&
        err.code === code &&
        err.status === status &&
        err.message.startsWith("path: "),
    );
  };
  expectCode(join(dir, "nope"), "folder_not_found", 404);
  writeFileSync(join(dir, "a-file"), "x");
  expectCode(join(dir, "a-file"), "not_a_folder", 400);
  mkdirSync(join(dir, "empty"));
  expectCode(join(dir, "empty"), "no_events_file", 400);
  mkdirSync(join(dir, "noconfig"));
  cpSync(join(SHIPPED, "ae-small-se", "events.jsonl"), join(dir, "noconfig", "events.jsonl"));
  const text = readFileSync(join(dir, "noconfig", "events.jsonl"), "utf8");
  writeFileSync(join(dir, "noconfig", "events.jsonl"), text.split("\n").slice(1).join("\n"));
  expectCode(join(dir, "noconfig"), "no_config_event", 400);
});
