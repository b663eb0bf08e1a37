// Jobs per second with 1 and with 2 service processes on one PostgreSQL (issue 22, part 3), in
// the same run: a PostgreSQL server of its own (tests/node/pg-server.ts: a temporary cluster,
// removed at the end), a fresh database and data folder per arm, every generation submitted to
// the first process; the clock runs from the first POST until the last job is over. The ratio
// of the two is the number to read (the machine's other load moves both arms).
//   npx tsx bench/pg-throughput.ts [--jobs 24] [--steps 8] [--threads 1] [--concurrency 2]
//       [--rounds 1] [--models DIR] [--model NAME]
// `npm run bench:pg -- --jobs 32` passes its options the same way.

import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { spawnServe } from "../src/server/serve-process.ts";
import { openPgStore } from "../src/store/pg-store.ts";
import { startPostgres } from "../tests/node/pg-server.ts";
import { benchModels } from "./bench-models.ts";

const { values } = parseArgs({
  options: {
    jobs: { type: "string", default: "24" },
    steps: { type: "string", default: "8" },
    threads: { type: "string", default: "1" },
    concurrency: { type: "string", default: "2" },
    rounds: { type: "string", default: "1" },
    models: { type: "string" },
    model: { type: "string" },
  },
});
const jobs = Number(values.jobs);
const steps = Number(values.steps);
const rounds = Number(values.rounds);

const work = mkdtempSync(join(tmpdir(), "diffusable-pg-bench-"));
const children: ChildProcess[] = [];
const pg = await startPostgres();

async function stopAll(): Promise<void> {
  for (const c of children.splice(0)) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    c.kill("SIGTERM");
    await new Promise((r) => c.once("exit", r));
  }
}

/** One arm: `n` processes on a fresh database; jobs/s. */
async function arm(n: number, round: number, models: { dir: string; model: string }) {
  const db = `bench_${n}_${round}`;
  const admin = await openPgStore(pg.url);
  await admin.pool.query(`CREATE DATABASE ${db}`);
  await admin.close();
  const url = pg.url.replace(/\/diffusable$/, `/${db}`);
  const store = await openPgStore(url);
  const secret = (await store.createKey("bench", "user")).secret;
  await store.close();
  const dataDir = join(work, db);
  const servers = await Promise.all(
    Array.from({ length: n }, () =>
      spawnServe({
        dataDir,
        modelsDir: models.dir,
        env: {
          DIFFUSABLE_DATABASE_URL: url,
          DIFFUSABLE_THREADS: String(values.threads),
          DIFFUSABLE_GENERATION_CONCURRENCY: String(values.concurrency),
          DIFFUSABLE_MAX_ACTIVE_JOBS: String(jobs),
          DIFFUSABLE_MAX_QUEUED_GENERATIONS: String(jobs),
          DIFFUSABLE_RUNS_IMPORT_DIR: "",
        },
        captureStderr: true,
        timeoutMs: 120_000,
      }).then((s) => {
        children.push(s.child);
        return s;
      }),
    ),
  );
  const first = servers[0]?.url as string;
  const headers = { authorization: `Bearer ${secret}`, "content-type": "application/json" };
  const started = performance.now();
  const ids: string[] = [];
  for (let i = 0; i < jobs; i++) {
    const res = await fetch(`${first}/v1/generations`, {
      method: "POST",
      headers,
      body: JSON.stringify({ model: models.model, label: 0, steps, seed: i, format: "npy" }),
    });
    if (res.status !== 202) throw new Error(`POST: ${res.status} ${await res.text()}`);
    ids.push(((await res.json()) as { id: string }).id);
  }
  const pending = new Set(ids);
  let failed = 0;
  // Which process ran each job: the leases name the worker (host:pid:nonce) while it runs.
  const watch = await openPgStore(url);
  const ranBy = new Map<string, string>();
  while (pending.size > 0) {
    await new Promise((r) => setTimeout(r, 100));
    const { rows } = await watch.pool.query<{ job_id: string; worker_id: string }>(
      "SELECT job_id, worker_id FROM diffusable_leases",
    );
    for (const r of rows) if (!ranBy.has(r.job_id)) ranBy.set(r.job_id, r.worker_id);
    for (const id of [...pending]) {
      const res = await fetch(`${first}/v1/generations/${id}`, { headers });
      const { status } = (await res.json()) as { status: string };
      if (status === "queued" || status === "running") continue;
      if (status !== "succeeded") failed++;
      pending.delete(id);
    }
  }
  const seconds = (performance.now() - started) / 1000;
  await watch.close();
  await stopAll();
  const perProcess = new Map<string, number>();
  for (const w of ranBy.values()) perProcess.set(w, (perProcess.get(w) ?? 0) + 1);
  return {
    processes: n,
    jobs,
    failed,
    seconds: +seconds.toFixed(2),
    jobsPerS: jobs / seconds,
    /** Jobs seen running on each process (a job shorter than the 100 ms poll may be missed). */
    perProcess: [...perProcess.values()].sort((a, b) => b - a),
  };
}

try {
  const models = benchModels(work, "denoiser.onnx", values.model, values.models);
  const load = loadavg()[0]?.toFixed(2);
  console.log(
    `pg-throughput: ${jobs} generations of ${models.model} (${steps} steps, npy) per arm, ` +
      `${values.threads} onnx thread(s) and ${values.concurrency} generations at once per process; load ${load}`,
  );
  for (let round = 0; round < rounds; round++) {
    const one = await arm(1, round, models);
    const two = await arm(2, round, models);
    for (const r of [one, two]) {
      console.log(
        `  ${r.processes} process(es): ${r.jobs} jobs in ${r.seconds} s = ${r.jobsPerS.toFixed(2)} jobs/s${r.failed ? ` (${r.failed} failed)` : ""}; seen running per process: ${r.perProcess.join(" + ")}`,
      );
    }
    console.log(
      `  ratio 2/1: ${(two.jobsPerS / one.jobsPerS).toFixed(2)} (round ${round + 1}; load now ${loadavg()[0]?.toFixed(2)})`,
    );
  }
} finally {
  await stopAll();
  await pg.stop();
  rmSync(work, { recursive: true, force: true });
}
