// Migration 0005 (one job model) keeps a database written by the old schema working: a data dir
// made with the migrations before it (separate `jobs` and `generations` tables, webhooks keyed by
// a free-text resource), with an encoding, finished generations (their files in generations/<id>/),
// a queued generation with an Idempotency-Key and a pending webhook, is migrated on open and read
// through the new API: the same ids, statuses, outputs and downloads, one list envelope, the
// queued generation run to the end, the webhook row kept for its job.

import assert from "node:assert/strict";
import { cpSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { ModelRuntime } from "../../src/pipeline/runtime.ts";
import { JobRunner } from "../../src/pipeline/work/job-runner.ts";
import { type App, createApp } from "../../src/server/app.ts";
import { createKey } from "../../src/store/api-keys.ts";
import { closeDb, type Db, MIGRATIONS_DIR, openDb } from "../../src/store/db.ts";
import { sqliteStore } from "../../src/store/sqlite-store.ts";
import { auth, MODEL, tempDir, testConfig } from "./server-helpers.ts";

/** The migrations as they were before 0005: the SQL files and a journal that ends at 0004. */
function oldMigrations(): string {
  const dir = join(tempDir("old-migrations"), "migrations");
  cpSync(MIGRATIONS_DIR, dir, { recursive: true });
  const journalPath = join(dir, "meta", "_journal.json");
  const journal = JSON.parse(readFileSync(journalPath, "utf8")) as {
    entries: { idx: number; tag: string }[];
  };
  journal.entries = journal.entries.filter((e) => e.idx <= 4);
  assert.equal(journal.entries.at(-1)?.tag, "0004_webhooks");
  writeFileSync(journalPath, JSON.stringify(journal));
  return dir;
}

const dataDir = tempDir("migration");
const config = testConfig(dataDir);
const t0 = Date.parse("2026-11-01T10:00:00Z");
const latents = (k: number) => new Uint8Array([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, k]);
let secret: string;
let db: Db;
let runtime: ModelRuntime;
let runner: JobRunner;
let app: App;

before(async () => {
  // 1. The old schema, and rows as the old server wrote them.
  const old = openDb(config.dbFile, { migrationsDir: oldMigrations() });
  const made = createKey(old, "old", "user");
  const key = made.key;
  secret = made.secret;
  const sql = old.$client;
  const encOut = join(dataDir, "outputs", "enc_old");
  mkdirSync(encOut, { recursive: true });
  writeFileSync(join(encOut, "0.npy"), latents(0));
  writeFileSync(join(encOut, "0.json"), "{}\n");
  sql
    .prepare(
      "INSERT INTO jobs (id, seq, kind, status, key_id, model, options, progress, attempts, created_at, started_at, finished_at) VALUES (?, 1, 'encode', 'succeeded', ?, ?, ?, 1, 1, ?, ?, ?)",
    )
    .run(
      "enc_old",
      key.id,
      MODEL,
      JSON.stringify({ mode: "clip", dtype: "float32" }),
      t0,
      t0 + 10,
      t0 + 20,
    );
  sql
    .prepare(
      "INSERT INTO job_items (job_id, \"index\", source_name, input_path, input_bytes, status, outputs, output_sha256, metadata, started_at, finished_at) VALUES ('enc_old', 0, 'a.mp4', '/gone/0.mp4', 10, 'succeeded', ?, 'abc', ?, ?, ?)",
    )
    .run(
      JSON.stringify({ latents: join(encOut, "0.npy"), metadata: join(encOut, "0.json") }),
      JSON.stringify({ frames: 9 }),
      t0 + 10,
      t0 + 20,
    );
  const options = {
    label: 0,
    labelName: "a",
    seed: 7,
    steps: 1,
    guidance: 1,
    method: "euler",
    frames: 5,
    n: 2,
    format: "npy",
  };
  const genDir = join(dataDir, "generations", "gen_0123456789abcdef01234567");
  mkdirSync(genDir, { recursive: true });
  const outs = [0, 1].map((k) => {
    writeFileSync(join(genDir, `${k}.npy`), latents(k + 1));
    return join(genDir, `${k}.npy`);
  });
  const insertGen = sql.prepare(
    "INSERT INTO generations (id, seq, status, key_id, model, options, step, steps, outputs, output_sha256, error_code, error_message, attempts, idempotency_key, request_sha256, created_at, started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
  );
  insertGen.run(
    "gen_0123456789abcdef01234567",
    1,
    "succeeded",
    key.id,
    MODEL,
    JSON.stringify(options),
    1,
    1,
    JSON.stringify(outs),
    JSON.stringify(["sha0", "sha1"]),
    null,
    null,
    1,
    null,
    null,
    t0 + 30,
    t0 + 31,
    t0 + 40,
  );
  insertGen.run(
    "gen_failed",
    2,
    "failed",
    key.id,
    MODEL,
    JSON.stringify({ ...options, n: 1 }),
    0,
    1,
    null,
    null,
    "interrupted",
    "the server stopped during this generation 3 times",
    3,
    null,
    null,
    t0 + 50,
    t0 + 51,
    t0 + 60,
  );
  insertGen.run(
    "gen_queued",
    3,
    "queued",
    key.id,
    MODEL,
    JSON.stringify({ ...options, n: 1, seed: 8 }),
    0,
    1,
    null,
    null,
    null,
    null,
    0,
    "old-key",
    "0".repeat(64),
    t0 + 70,
    null,
    null,
  );
  sql
    .prepare(
      "INSERT INTO webhooks (id, resource, job_id, url) VALUES ('msg_q', 'generations', 'gen_queued', 'https://example.com/hook'), ('msg_gone', 'encodings', 'enc_deleted', 'https://example.com/hook')",
    )
    .run();
  closeDb(old);

  // 2. The new server on that data dir: the migration runs on open.
  db = openDb(config.dbFile);
  runtime = await ModelRuntime.open({ modelsDir: config.modelsDir, threads: 1 });
  await runtime.pool.describe(runtime.loaded(MODEL).paths.encoder);
  runner = new JobRunner({
    store: sqliteStore(db),
    runtime,
    dataDir,
    concurrency: { autoencoder: 1, generation: 1 },
  });
  await runner.start();
  app = createApp({ store: sqliteStore(db), db, runtime, runner, config });
});

after(async () => {
  await runner.stop();
  await runtime.close();
  closeDb(db);
});

const get = (path: string, headers: Record<string, string> = {}) =>
  app.request(path, { headers: { ...auth(secret), ...headers } });

type Job = {
  id: string;
  kind: string;
  status: string;
  seed?: number;
  step: number;
  steps: number;
  error: { code: string } | null;
  items: { index: number; status: string; sha256: string | null; urls: Record<string, string> }[];
  outputs: { index: number; sha256: string; url: string }[];
};

test("the old encoding reads as before: its item, its latents and metadata", async () => {
  const res = await get("/v1/encodings/enc_old");
  assert.equal(res.status, 200);
  const job = (await res.json()) as Job;
  assert.equal(job.kind, "encode");
  assert.equal(job.status, "succeeded");
  assert.deepEqual(Object.keys(job.items[0]?.urls ?? {}).sort(), ["latents", "metadata"]);
  const npy = await get("/v1/encodings/enc_old/items/0/latents");
  assert.equal(npy.status, 200);
  assert.deepEqual(new Uint8Array(await npy.arrayBuffer()), latents(0));
});

test("old generations are jobs of kind generate: items, outputs, downloads by either route", async () => {
  const res = await get("/v1/generations/gen_0123456789abcdef01234567");
  assert.equal(res.status, 200);
  const g = (await res.json()) as Job;
  assert.equal(g.kind, "generate");
  assert.equal(g.status, "succeeded");
  assert.equal(g.seed, 7);
  assert.deepEqual([g.step, g.steps], [1, 1]);
  assert.deepEqual(
    g.items.map((i) => [i.index, i.status, i.sha256]),
    [
      [0, "succeeded", "sha0"],
      [1, "succeeded", "sha1"],
    ],
  );
  assert.deepEqual(
    g.outputs.map((o) => o.url),
    [0, 1].map((k) => `/v1/generations/${g.id}/items/${k}/latents`),
  );
  for (const url of [`/v1/generations/${g.id}/content?index=1`, g.outputs[1]?.url as string]) {
    const file = await get(url);
    assert.equal(file.status, 200, url);
    assert.deepEqual(new Uint8Array(await file.arrayBuffer()), latents(2));
  }
  const failed = (await (await get("/v1/generations/gen_failed")).json()) as Job;
  assert.equal(failed.status, "failed");
  assert.equal(failed.error?.code, "interrupted");
  assert.equal(failed.items[0]?.status, "failed");
});

test("one list envelope, newest first, over old rows", async () => {
  const list = (await (await get("/v1/generations")).json()) as { jobs: Job[]; next: null };
  assert.deepEqual(
    list.jobs.map((j) => j.id),
    ["gen_queued", "gen_failed", "gen_0123456789abcdef01234567"],
  );
  const encodings = (await (await get("/v1/encodings")).json()) as { jobs: Job[] };
  assert.deepEqual(
    encodings.jobs.map((j) => j.id),
    ["enc_old"],
  );
});

test("the queued old generation runs to the end; its webhook stays with it, the orphan goes", async () => {
  const res = await get("/v1/generations/gen_queued", { prefer: "wait=60" });
  const g = (await res.json()) as Job;
  assert.equal(g.status, "succeeded", JSON.stringify(g));
  assert.equal(g.outputs.length, 1);
  const file = await get(`/v1/generations/gen_queued/content`);
  assert.equal(file.status, 200);
  const hooks = db.$client.prepare("SELECT id, job_id FROM webhooks ORDER BY id").all();
  assert.deepEqual(hooks, [{ id: "msg_q", job_id: "gen_queued" }]);
  // Its Idempotency-Key is kept: another request with it is refused, not run.
  const again = await app.request("/v1/generations", {
    method: "POST",
    headers: { ...auth(secret), "content-type": "application/json", "idempotency-key": "old-key" },
    body: JSON.stringify({ model: MODEL, label: "a", steps: 1, format: "npy" }),
  });
  assert.equal(again.status, 422);
  assert.equal(
    ((await again.json()) as { error: { code: string } }).error.code,
    "idempotency_key_reused",
  );
});
