import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { getEventListeners } from "node:events";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { getPriority, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  checkFeeds,
  openSession,
  runSession,
  type Session,
  type TensorValue,
} from "../../src/pipeline/onnx/onnx-session.ts";
import { SessionPool } from "../../src/pipeline/onnx/session-pool.ts";
import { PipelineError } from "../../src/pipeline/pipeline-error.ts";
import { fixtureBundle } from "./media.ts";
import { alive, childrenOf, cmdlineOf } from "./proc.ts";

let encoder = "";
let session: Session;
let pool: SessionPool;

/** A deterministic (B, 3, T, 32, 32) video in [-1, 1]. */
function video(batch: number, frames: number, seed: number): TensorValue {
  const dims = [batch, 3, frames, 32, 32];
  const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
  let x = seed;
  for (let i = 0; i < data.length; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    data[i] = (x / 2147483648) * 2 - 1;
  }
  return { dtype: "float32", dims, data };
}

const clone = (v: TensorValue): TensorValue => ({ ...v, data: v.data.slice() });

function maxAbs(a: TensorValue["data"], b: TensorValue["data"]): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(Number(a[i]) - Number(b[i])));
  return worst;
}

before(async () => {
  encoder = join(fixtureBundle(), "encoder.onnx");
  session = await openSession(encoder);
  pool = new SessionPool({ size: 2, intraOpThreads: 1 });
});
after(async () => {
  await session?.release();
  await pool?.close();
});

test("runs in parallel workers and returns what onnx-session.ts returns directly", async () => {
  const inputs = [1, 2, 3, 4].map((seed) => video(2, 9, seed));
  const results = await Promise.all(inputs.map((v) => pool.run(encoder, { video: clone(v) })));
  const stats = pool.stats();
  assert.equal(stats.busyPeak, 2, "two requests never ran at the same time");
  assert.equal(stats.busy, 0);
  for (const [i, v] of inputs.entries()) {
    const direct = await runSession(session, { video: clone(v) });
    const viaPool = results[i]?.latent;
    assert.ok(viaPool && direct.latent);
    assert.deepEqual(viaPool.dims, direct.latent.dims);
    assert.deepEqual(viaPool.dims, [2, 4, 3, 4, 4]);
    assert.ok(maxAbs(viaPool.data, direct.latent.data) <= 1e-6);
  }
});

test("transfer moves the feed buffers instead of copying them", async () => {
  const kept = video(1, 5, 7);
  await pool.run(encoder, { video: kept });
  assert.equal(kept.data.length, 1 * 3 * 5 * 32 * 32, "copied by default");
  const moved = video(1, 5, 7);
  const out = await pool.run(encoder, { video: moved }, { transfer: true });
  assert.equal(moved.data.length, 0, "the buffer was not transferred");
  assert.deepEqual(out.latent?.dims, [1, 4, 2, 4, 4]);
});

test("checkFeeds' report comes back from the worker word for word", async () => {
  const bad = { video: { ...video(1, 5, 1), dims: [1, 3, 5, 32] } };
  let direct = "";
  try {
    checkFeeds(session, bad);
  } catch (err) {
    direct = (err as Error).message;
  }
  assert.match(direct, /"video" has rank 4, expected 5/);
  await assert.rejects(pool.run(encoder, bad), (err: unknown) => {
    assert.ok(err instanceof PipelineError);
    assert.equal(err.code, "model_inputs");
    assert.equal(err.message, direct);
    return true;
  });
  // A model that cannot be opened, and the pool still works afterwards.
  await assert.rejects(pool.run(join(encoder, "..", "missing.onnx"), {}), {
    code: "model_failed",
    message: /cannot open ONNX model .*missing\.onnx/,
  });
  const description = await pool.describe(encoder);
  assert.deepEqual(description.inputNames, ["video"]);
});

test("a run leaves no abort listener on its signal: one job's signal sees many runs", async () => {
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
  process.on("warning", onWarning);
  try {
    const controller = new AbortController();
    const { signal } = controller;
    for (let i = 0; i < 12; i++) await pool.run(encoder, { video: video(1, 5, i) }, { signal });
    await Promise.all(
      [1, 2, 3, 4].map((i) => pool.run(encoder, { video: video(1, 5, i) }, { signal })),
    );
    const failing = pool.run(join(tmpdir(), "missing.onnx"), {}, { signal });
    await assert.rejects(failing);
    assert.equal(getEventListeners(signal, "abort").length, 0);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(
      warnings.filter((w) => w.startsWith("MaxListenersExceededWarning")),
      [],
    );
  } finally {
    process.off("warning", onWarning);
  }
});

test("close lets running requests finish, fails queued ones, then refuses work", async () => {
  // Closed right after creation: the workers are still loading onnxruntime, which close waits for.
  const p = new SessionPool({ size: 1 });
  const running = p.run(encoder, { video: video(1, 5, 1) });
  const queued = p.run(encoder, { video: video(1, 5, 2) });
  queued.catch(() => {});
  await p.close();
  assert.deepEqual((await running).latent?.dims, [1, 4, 2, 4, 4]);
  await assert.rejects(queued, { code: "closed" });
  await assert.rejects(p.run(encoder, { video: video(1, 1, 1) }), { code: "closed" });
  assert.equal(p.stats().busy, 0);
});

test("the pool turns onnxruntime's telemetry off unless the operator set it, and leaves no log in /tmp", () => {
  // onnxruntime-node's Linux telemetry writes /tmp/mat-debug-<pid>.log for every process that
  // opens a session, wherever its telemetry can start (on one CI machine it did not, so the log's
  // appearance is not something a test can ask for). What the service controls is the variable
  // onnxruntime reads when it creates its environment: the child prints it after a real session
  // ran, so the check fails without ort-env.ts whatever the machine.
  const dir = mkdtempSync(join(tmpdir(), "pool-child-"));
  const script = join(dir, "child.mts"); // an ES module wherever it lies
  const pool = join(import.meta.dirname, "../../src/pipeline/onnx/session-pool.ts");
  writeFileSync(
    script,
    `import { SessionPool } from ${JSON.stringify(pool)};
const pool = new SessionPool({ size: 1, intraOpThreads: 1 });
const data = new Float32Array(3 * 5 * 32 * 32);
await pool.run(${JSON.stringify(encoder)}, { video: { dtype: "float32", dims: [1, 3, 5, 32, 32], data } });
await pool.close();
console.log(JSON.stringify({ pid: process.pid, telemetry: process.env.ORT_DISABLE_TELEMETRY ?? null }));
`,
  );
  const runChild = (telemetry: string | undefined) => {
    const env = { ...process.env };
    delete env.ORT_DISABLE_TELEMETRY;
    if (telemetry !== undefined) env.ORT_DISABLE_TELEMETRY = telemetry;
    const r = spawnSync(process.execPath, ["--import", "tsx", script], { encoding: "utf8", env });
    assert.equal(r.status, 0, r.stderr);
    const { pid, telemetry: seen } = JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "");
    return { log: join("/tmp", `mat-debug-${pid}.log`), seen };
  };
  const logs: string[] = [];
  try {
    const quiet = runChild(undefined);
    logs.push(quiet.log);
    assert.equal(
      quiet.seen,
      "1",
      "the service sets ORT_DISABLE_TELEMETRY=1 before a session opens",
    );
    assert.equal(existsSync(quiet.log), false, `${quiet.log} was left behind`);
    const asked = runChild("0");
    logs.push(asked.log); // written where telemetry could start: not ours to keep
    assert.equal(asked.seen, "0", "an operator's ORT_DISABLE_TELEMETRY is left as they set it");
  } finally {
    for (const log of logs) rmSync(log, { force: true });
    rmSync(dir, { recursive: true, force: true });
  }
});

test("process isolation: the same outputs as threads, workers at the pool's nice, none left after close", async () => {
  const before = new Set(childrenOf(process.pid));
  const p = new SessionPool({ size: 2, intraOpThreads: 1, nice: 7, isolation: "process" });
  try {
    const inputs = [1, 2, 3].map((seed) => video(2, 9, seed));
    const results = await Promise.all(inputs.map((v) => p.run(encoder, { video: clone(v) })));
    for (const [i, v] of inputs.entries()) {
      const direct = await runSession(session, { video: clone(v) });
      const got = results[i]?.latent;
      assert.ok(got && direct.latent, "no latent");
      assert.deepEqual(got.dims, direct.latent.dims);
      assert.equal(maxAbs(got.data, direct.latent.data), 0);
    }
    const workers = childrenOf(process.pid).filter(
      (c) => !before.has(c) && cmdlineOf(c).includes("session-worker"),
    );
    assert.equal(workers.length, 2, `worker processes: ${workers.join(", ")}`);
    for (const w of workers) {
      // every thread of the worker, onnxruntime's and V8's, at the pool's nice value (or at
      // this process's own, if the test runs at a higher one: nice(1) adds the difference)
      for (const t of readdirSync(`/proc/${w}/task`)) {
        const stat = readFileSync(`/proc/${w}/task/${t}/stat`, "utf8");
        const nice = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);
        assert.equal(nice, Math.max(7, getPriority()));
      }
    }
    await assert.rejects(p.run(encoder, { video: video(1, 4, 1) }), /video|dimension|shape/i);
  } finally {
    await p.close();
  }
  assert.deepEqual(
    childrenOf(process.pid).filter((c) => !before.has(c) && alive(c)),
    [],
    "a worker process outlived close()",
  );
});

test("process isolation: the workers exit when the pool's process is killed with SIGKILL", async () => {
  const dir = mkdtempSync(join(tmpdir(), "pool-kill-"));
  const script = join(dir, "child.mts");
  const poolModule = join(import.meta.dirname, "../../src/pipeline/onnx/session-pool.ts");
  writeFileSync(
    script,
    `import { SessionPool } from ${JSON.stringify(poolModule)};
const pool = new SessionPool({ size: 2, intraOpThreads: 1, isolation: "process" });
const data = new Float32Array(3 * 5 * 32 * 32);
await pool.run(${JSON.stringify(encoder)}, { video: { dtype: "float32", dims: [1, 3, 5, 32, 32], data } });
console.log("ready");
setInterval(() => {}, 1000);
`,
  );
  const child = spawn(process.execPath, ["--import", "tsx", script], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout?.on("data", (d: Buffer) => d.toString().includes("ready") && resolve());
      child.once("exit", (code) => reject(new Error(`the child exited first (${code})`)));
    });
    // (tsx has a child of its own, esbuild: the workers are the ones running session-worker)
    const workers = childrenOf(child.pid as number).filter((c) =>
      cmdlineOf(c).includes("session-worker"),
    );
    assert.equal(workers.length, 2, `worker processes: ${workers.join(", ")}`);
    child.kill("SIGKILL");
    const deadline = Date.now() + 10_000;
    while (workers.some(alive) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(workers.filter(alive), [], "worker processes outlived their pool's process");
  } finally {
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
});
