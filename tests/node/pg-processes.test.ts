// Issue 22, part 3's must-show: two service processes on one PostgreSQL (a server the test starts,
// tests/node/pg-server.ts) and one shared data folder. 16 generations and 4 encodings are
// submitted to the first; the first is killed with SIGKILL while it runs some of them; the
// second finishes every one (the dead process's jobs come back to the queue once its heartbeat
// stops, and resume there), with outputs byte-identical to a single-process run on the default
// SQLite store; GET from either process answers for any job (the first's answers are taken
// before the kill).

import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { type ServeProcess, spawnServe } from "../../src/server/serve-process.ts";
import { createKey } from "../../src/store/api-keys.ts";
import { closeDb, openDb } from "../../src/store/db.ts";
import { openPgStore } from "../../src/store/pg-store.ts";
import { type PostgresServer, startPostgres } from "./pg-server.ts";
import { auth, fixtureModelsDir, MODEL, makeVideo, tempDir } from "./server-helpers.ts";

const GENERATIONS = 16;
const ENCODINGS = 4;
const inputs = tempDir("pg-inputs");
const videos = Array.from({ length: ENCODINGS }, (_, i) =>
  makeVideo(join(inputs, `clip${i}.mp4`), { seconds: 6 + i, size: "96x64" }),
);
const children: ChildProcess[] = [];
let pg: PostgresServer;

before(async () => {
  pg = await startPostgres();
});
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await Promise.all(
    children.map((c) =>
      c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once("exit", r)) : null,
    ),
  );
  await pg?.stop();
  assert.equal(existsSync(pg.dir), false, "the PostgreSQL folder is left behind");
});

/** A service process; with `url`, on that PostgreSQL. */
async function serve(dataDir: string, url?: string): Promise<ServeProcess> {
  const server = await spawnServe({
    dataDir,
    modelsDir: fixtureModelsDir(),
    env: {
      DIFFUSABLE_THREADS: "1",
      DIFFUSABLE_JOB_CONCURRENCY: "1",
      DIFFUSABLE_GENERATION_CONCURRENCY: "2",
      DIFFUSABLE_RUNS_IMPORT_DIR: "",
      DIFFUSABLE_MAX_ACTIVE_JOBS: "100",
      ...(url ? { DIFFUSABLE_DATABASE_URL: url, DIFFUSABLE_WORKER_TIMEOUT_MS: "1500" } : {}),
    },
    captureStderr: true,
    timeoutMs: 60_000,
  });
  children.push(server.child);
  return server;
}

const generation = (i: number) => ({
  model: MODEL,
  label: "a",
  steps: 40,
  seed: 100 + i,
  format: "npy",
});

/** Submits the 16 generations and 4 encodings; their ids in order. */
async function submitAll(url: string, secret: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < GENERATIONS; i++) {
    const res = await fetch(`${url}/v1/generations`, {
      method: "POST",
      headers: { ...auth(secret), "content-type": "application/json" },
      body: JSON.stringify(generation(i)),
    });
    assert.equal(res.status, 202, await res.clone().text());
    ids.push(((await res.json()) as { id: string }).id);
  }
  for (const path of videos) {
    const form = new FormData();
    form.append("model", MODEL);
    form.append("mode", "whole");
    form.append("files", new Blob([readFileSync(path)]), path.split("/").pop());
    const res = await fetch(`${url}/v1/encodings`, {
      method: "POST",
      headers: auth(secret),
      body: form,
    });
    assert.equal(res.status, 202, await res.clone().text());
    ids.push(((await res.json()) as { id: string }).id);
  }
  return ids;
}

interface Job {
  id: string;
  status: string;
  attempts: number;
  items: { status: string; sha256: string | null }[];
}

const resourceOf = (id: string) => (id.startsWith("gen_") ? "generations" : "encodings");

async function getJob(
  url: string,
  secret: string,
  id: string,
): Promise<{ status: number; job: Job }> {
  const res = await fetch(`${url}/v1/${resourceOf(id)}/${id}`, { headers: auth(secret) });
  return { status: res.status, job: (await res.json()) as Job };
}

/** Waits until every job is over; their final views. */
async function allOver(url: string, secret: string, ids: string[], ms = 600_000): Promise<Job[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const jobs = await Promise.all(ids.map(async (id) => (await getJob(url, secret, id)).job));
    if (jobs.every((j) => j.status !== "queued" && j.status !== "running")) return jobs;
    assert.ok(
      Date.now() < deadline,
      `not over: ${jobs.map((j) => `${j.id} ${j.status}`).join(", ")}`,
    );
    await new Promise((r) => setTimeout(r, 250));
  }
}

const shas = (jobs: Job[]) => jobs.map((j) => j.items.map((i) => i.sha256));

test("two processes on one PostgreSQL: the first SIGKILLed mid-jobs, the second finishes all of them, byte-identical to one process", async (t) => {
  // The reference: one process on the default store (the SQLite file), no PostgreSQL.
  const soloDir = tempDir("pg-solo");
  const soloDb = openDb(join(soloDir, "diffusable.sqlite"));
  const soloSecret = createKey(soloDb, "solo", "user").secret;
  closeDb(soloDb);
  const solo = await serve(soloDir);
  assert.match(solo.log(), /jobs in SQLite /);
  const soloIds = await submitAll(solo.url, soloSecret);
  const reference = await allOver(solo.url, soloSecret, soloIds);
  solo.child.kill("SIGTERM");
  await new Promise((r) => solo.child.once("exit", r));
  for (const j of reference) assert.equal(j.status, "succeeded", JSON.stringify(j));

  // Two processes, one database, one data folder.
  const store = await openPgStore(pg.url);
  const secret = (await store.createKey("two", "user")).secret;
  const shared = tempDir("pg-shared");
  const [a, b] = await Promise.all([serve(shared, pg.url), serve(shared, pg.url)]);
  assert.match(a.log(), /jobs in PostgreSQL postgres:\/\/diffusable@127\.0\.0\.1/);
  const aPid = a.child.pid as number;
  try {
    const ids = await submitAll(a.url, secret);
    // GET from either process answers for any job, while they run (the first before it is killed).
    for (const id of ids) {
      for (const p of [a, b]) {
        const got = await getJob(p.url, secret, id);
        assert.equal(got.status, 200, `${p.url} ${id}`);
        assert.equal(got.job.id, id);
      }
    }
    // Kill the first process while it holds a job that is still running (its lease names its
    // pid). The jobs are short, so a lease seen a moment ago may belong to a job that has just
    // ended: the process is frozen (SIGSTOP) while its jobs are read, and killed only once one
    // it holds is still running, which a frozen process cannot finish.
    const deadline = Date.now() + 120_000;
    let killedHolding: { job: Job }[] = [];
    for (;;) {
      const { rows } = await store.pool.query<{ job_id: string }>(
        "SELECT job_id FROM diffusable_leases WHERE worker_id LIKE $1",
        [`%:${aPid}:%`],
      );
      if (rows.length > 0) {
        a.child.kill("SIGSTOP");
        const views = await Promise.all(rows.map((r) => getJob(b.url, secret, r.job_id)));
        killedHolding = views.filter(({ job }) => job.status === "running");
        if (killedHolding.length > 0) break;
        a.child.kill("SIGCONT");
      }
      assert.ok(Date.now() < deadline, "the first process never held a running job");
      await new Promise((r) => setTimeout(r, 20));
    }
    a.child.kill("SIGKILL");
    await new Promise((r) => a.child.once("exit", r));
    t.diagnostic(
      `killed the first process holding ${killedHolding.map(({ job }) => job.id).join(", ")}`,
    );

    const jobs = await allOver(b.url, secret, ids);
    for (const j of jobs) assert.equal(j.status, "succeeded", JSON.stringify(j));
    // the jobs the dead process held were run again, by the second
    for (const { job } of killedHolding) {
      assert.ok((jobs.find((j) => j.id === job.id)?.attempts ?? 0) >= 2, job.id);
    }
    assert.deepEqual(shas(jobs), shas(reference), "the outputs are those of one process");
    // and the files behind them are served, whole, by the survivor
    for (const j of jobs) {
      const res = await fetch(`${b.url}/v1/${resourceOf(j.id)}/${j.id}/content`, {
        headers: auth(secret),
      });
      assert.equal(res.status, 200, j.id);
      await res.arrayBuffer();
    }
    assert.match(b.log(), /put back in the queue/);
  } finally {
    await store.close();
  }
});
