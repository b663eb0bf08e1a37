// The job runner on its own (real database, runtime and ffmpeg): order and concurrency, per-item
// failures, cancellation, and the start-up recovery of jobs a crash left running.

import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { ModelRuntime } from "../../src/pipeline/runtime.ts";
import { outputsDir } from "../../src/pipeline/work/datadir.ts";
import { JobRunner, MAX_ATTEMPTS } from "../../src/pipeline/work/job-runner.ts";
import { closeDb, type Db, openDb } from "../../src/store/db.ts";
import { getJob, insertJob, newJobId, setItem, setJob } from "../../src/store/job-rows.ts";
import { sqliteStore } from "../../src/store/sqlite-store.ts";
import { fixtureModelsDir, MODEL, makeVideo, tempDir, tempFilesUnder } from "./server-helpers.ts";

const dataDir = tempDir("runner");
const inputs = join(dataDir, "inputs");
let db: Db;
let runtime: ModelRuntime;
const runners: JobRunner[] = [];

before(async () => {
  mkdirSync(inputs, { recursive: true });
  db = openDb(join(dataDir, "diffusable.sqlite"));
  runtime = await ModelRuntime.open({ modelsDir: fixtureModelsDir(), threads: 1 });
});
after(async () => {
  for (const r of runners) await r.stop();
  await runtime.close();
  closeDb(db);
  rmSync(dataDir, { recursive: true, force: true });
});

function runner(concurrency = 1): JobRunner {
  const r = new JobRunner({
    store: sqliteStore(db),
    runtime,
    dataDir,
    concurrency: { autoencoder: concurrency, generation: 1 },
  });
  runners.push(r);
  return r;
}

function addJob(
  paths: string[],
  options: Record<string, unknown> = { mode: "whole", dtype: "float32" },
) {
  const id = newJobId("enc");
  insertJob(db, {
    id,
    kind: "encode",
    keyId: null,
    model: MODEL,
    options,
    items: paths.map((p) => ({
      sourceName: p.split("/").pop() as string,
      inputPath: p,
      inputBytes: 1,
    })),
  });
  return id;
}

test("queued jobs run oldest first, one at a time with concurrency 1", async () => {
  const video = makeVideo(join(inputs, "order.mp4"), { seconds: 2 });
  const ids = [addJob([video]), addJob([video]), addJob([video])];
  const r = runner(1);
  await r.start();
  await r.idle();
  await r.stop();
  const jobs = ids.map((id) => getJob(db, id)?.job);
  for (const job of jobs) assert.equal(job?.status, "succeeded");
  for (let i = 1; i < jobs.length; i++) {
    const prev = jobs[i - 1]?.finishedAt?.getTime() ?? Number.POSITIVE_INFINITY;
    assert.ok((jobs[i]?.startedAt?.getTime() ?? 0) >= prev, "started after the previous finished");
  }
});

test("a failing item is reported per item; a job whose items all fail is failed with the code", async () => {
  const video = makeVideo(join(inputs, "ok.mp4"), { seconds: 2 });
  const text = join(inputs, "text.mp4");
  writeFileSync(text, "not a video at all\n");
  const mixed = addJob([video, text]);
  const bad = addJob([text]);
  const r = runner(2);
  await r.start();
  await r.idle();
  await r.stop();
  const m = getJob(db, mixed);
  assert.equal(m?.job.status, "succeeded");
  assert.equal(m?.items[0]?.status, "succeeded");
  assert.equal(m?.items[1]?.status, "failed");
  assert.equal(m?.items[1]?.errorCode, "not_a_video");
  const b = getJob(db, bad);
  assert.equal(b?.job.status, "failed");
  assert.equal(b?.job.errorCode, "not_a_video");
  assert.match(b?.job.errorMessage ?? "", /ffprobe/);
  assert.deepEqual(tempFilesUnder(dataDir), []);
});

test("canceling a running job stops it and leaves no temporary files", async () => {
  const long = makeVideo(join(inputs, "long.mp4"), { seconds: 60, size: "96x64" });
  const id = addJob([long, long, long]);
  const r = runner(1);
  await r.start();
  while (getJob(db, id)?.job.status !== "running") await new Promise((res) => setTimeout(res, 10));
  assert.equal(await r.cancel(id), true);
  await r.idle();
  await r.stop();
  const job = getJob(db, id);
  assert.equal(job?.job.status, "canceled");
  assert.ok(job?.items.some((i) => i.status === "canceled"));
  assert.equal(await r.cancel(id), false, "already over");
  assert.deepEqual(tempFilesUnder(dataDir), []);
});

test("start-up recovery: a running job resumes keeping done items; stray temp files go", async () => {
  const video = makeVideo(join(inputs, "resume.mp4"), { seconds: 2 });
  const id = addJob([video, video]);
  // Run it once fully, then rewind it to how a crash after item 0 would leave it.
  let r = runner(1);
  await r.start();
  await r.idle();
  await r.stop();
  const done = getJob(db, id);
  const first = done?.items[0];
  assert.ok(first?.outputSha256);
  setJob(db, id, { status: "running", finishedAt: null, progress: 0.5 });
  setItem(db, id, 1, { status: "running", outputs: null, outputSha256: null, finishedAt: null });
  rmSync(join(outputsDir(dataDir, id), "1.npy"));
  writeFileSync(join(outputsDir(dataDir, id), ".tmp-1-deadbeef.npy"), "half");

  r = runner(1);
  const report = await r.start();
  assert.deepEqual(report.resumed, [id]);
  assert.ok(report.removedTemp >= 1);
  await r.idle();
  await r.stop();
  const resumed = getJob(db, id);
  assert.equal(resumed?.job.status, "succeeded");
  assert.equal(resumed?.job.attempts, 2);
  assert.equal(resumed?.items[0]?.outputSha256, first.outputSha256, "item 0 kept");
  assert.equal(resumed?.items[0]?.finishedAt?.getTime(), first.finishedAt?.getTime());
  assert.equal(resumed?.items[1]?.status, "succeeded");
  assert.ok(readdirSync(outputsDir(dataDir, id)).every((f) => !f.startsWith(".tmp-")));
});

test("a job that crashed the server too often, or lost its inputs, is failed with the reason", async () => {
  const video = makeVideo(join(inputs, "poison.mp4"), { seconds: 2 });
  const poison = addJob([video]);
  setJob(db, poison, { status: "running" });
  db.$client.prepare("UPDATE jobs SET attempts = ? WHERE id = ?").run(MAX_ATTEMPTS, poison);
  const gone = join(inputs, "gone.mp4");
  makeVideo(gone, { seconds: 2 });
  const lost = addJob([gone]);
  setJob(db, lost, { status: "running" });
  rmSync(gone);
  const orphan = join(dataDir, "uploads", "enc_orphan");
  mkdirSync(orphan, { recursive: true });

  const r = runner(1);
  const report = await r.start();
  await r.idle();
  await r.stop();
  assert.deepEqual(report.failed.sort(), [lost, poison].sort());
  assert.equal(getJob(db, poison)?.job.errorCode, "interrupted");
  assert.match(getJob(db, poison)?.job.errorMessage ?? "", /stopped during this job 3 times/);
  assert.equal(getJob(db, lost)?.job.status, "failed");
  assert.equal(getJob(db, lost)?.job.errorCode, "input_missing");
  assert.ok(!existsSync(orphan), "upload folders without a live job are removed");
});
