// /v1/runs through app.request(): admin-only start and import (a user key gets 403), JSON 4xx
// errors naming the problem, the shipped runs imported and linked, metrics by name, and a real
// tiny autoencoder run and a tiny diffusion run on it started through POST /v1/runs whose events
// reach SQLite while they train.

import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { REPO_ROOT } from "./python.ts";
import { auth, openTestApp, type TestApp } from "./server-helpers.ts";

const SHIPPED = join(REPO_ROOT, "tests/node/fixtures/recorded-runs");

let t: TestApp;

before(async () => {
  t = await openTestApp();
});
after(() => t.close());

const post = (path: string, body: unknown, secret = t.admin) =>
  t.app.request(path, {
    method: "POST",
    headers: { ...auth(secret), "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
const get = (path: string, secret = t.user) => t.app.request(path, { headers: auth(secret) });

async function expectError(res: Response, status: number, code: string, message?: RegExp) {
  const body = (await res.json()) as { error: { code: string; message: string } };
  assert.equal(res.status, status, JSON.stringify(body));
  assert.equal(body.error.code, code);
  if (message) assert.match(body.error.message, message);
}

type Run = { id: string; status: string; step: number; autoencoderRunId: string | null };

test("a user key cannot start or import runs; no key gets 401", async () => {
  await expectError(
    await post("/v1/runs", { kind: "autoencoder", config: "tiny", variant: "se" }, t.user),
    403,
    "forbidden",
  );
  await expectError(
    await post("/v1/runs/import", { path: join(SHIPPED, "ae-small-se") }, t.user),
    403,
    "forbidden",
  );
  await expectError(await t.app.request("/v1/runs"), 401, "missing_api_key");
  const list = (await (await get("/v1/runs")).json()) as { runs: Run[] };
  assert.deepEqual(list.runs, []);
});

test("admin imports the shipped runs; GET list, run, metrics; linked runs", async () => {
  for (const name of ["ae-small-se", "dit-small-se", "ae-small-baseline", "dit-small-baseline"]) {
    const res = await post("/v1/runs/import", { path: join(SHIPPED, name) });
    const body = (await res.json()) as { run: Run; accepted: number; added: number; rejected: [] };
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.run.id, name);
    assert.equal(body.run.status, "finished");
    assert.ok(body.accepted > 30);
    assert.equal(body.added, body.accepted);
    assert.deepEqual(body.rejected, []);
  }
  const again = (await (
    await post("/v1/runs/import", { path: join(SHIPPED, "dit-small-se") })
  ).json()) as { added: number; accepted: number };
  assert.equal(again.added, 0);
  assert.equal(again.accepted, 37);

  // Paginated list, newest first; `next` leads to the rest.
  const page1 = (await (await get("/v1/runs?limit=3")).json()) as {
    runs: Run[];
    next: string;
  };
  assert.deepEqual(
    page1.runs.map((r) => r.id),
    ["dit-small-se", "dit-small-baseline", "ae-small-baseline"],
  );
  assert.equal(page1.next, "/v1/runs?limit=3&before=ae-small-baseline");
  const page2 = (await (await get(page1.next)).json()) as { runs: Run[]; next: null };
  assert.deepEqual(
    page2.runs.map((r) => r.id),
    ["ae-small-se"],
  );
  assert.equal(page2.next, null);
  const ae = (await (await get("/v1/runs?kind=autoencoder")).json()) as { runs: Run[] };
  assert.equal(ae.runs.length, 2);

  const detail = (await (await get("/v1/runs/ae-small-se")).json()) as {
    run: Run;
    metrics: string[];
    artifacts: { kind: string; path: string }[];
    diffusionRuns: Run[];
    autoencoder: Run | null;
  };
  assert.equal(detail.run.id, "ae-small-se");
  assert.ok(detail.metrics.includes("val/psnr"));
  assert.ok(detail.artifacts.some((a) => a.kind === "spectrum" && a.path === "spectrum.json"));
  assert.deepEqual(
    detail.diffusionRuns.map((r) => r.id),
    ["dit-small-se"],
  );
  const dit = (await (await get("/v1/runs/dit-small-se")).json()) as { autoencoder: Run };
  assert.equal(dit.autoencoder.id, "ae-small-se");

  const fd = (await (await get("/v1/runs/dit-small-se/metrics?name=eval/fd_rand3d")).json()) as {
    points: { step: number; value: number }[];
  };
  assert.deepEqual(
    fd.points.map((p) => p.step),
    [0, 300, 600, 900, 1200],
  );
  const file = readFileSync(join(SHIPPED, "dit-small-se", "events.jsonl"), "utf8");
  const last = file
    .split("\n")
    .filter((l) => l.includes('"type":"eval"'))
    .map((l) => JSON.parse(l) as { fd_rand3d: number })
    .at(-1);
  assert.equal(fd.points.at(-1)?.value, last?.fd_rand3d);
});

test("4xx answers are JSON naming the problem", async () => {
  await expectError(await get("/v1/runs/nope"), 404, "not_found", /nope/);
  await expectError(await get("/v1/runs/dit-small-se/metrics"), 400, "invalid_field", /^name /);
  await expectError(
    await get("/v1/runs/dit-small-se/metrics?name=val/psnr"),
    404,
    "metric_not_found",
    /^name: .*eval\/fd_rand3d/,
  );
  await expectError(await get("/v1/runs/nope/metrics?name=x"), 404, "not_found");
  await expectError(
    await get("/v1/runs?limit=0"),
    400,
    "invalid_field",
    /^limit must be at least 1/,
  );
  await expectError(await get("/v1/runs?kind=gan"), 400, "invalid_field", /^kind must be one of/);
  await expectError(await get("/v1/runs?cursor=zzz"), 400, "invalid_field", /^cursor[: ]/);

  await expectError(await post("/v1/runs/import", "{"), 400, "invalid_json");
  await expectError(await post("/v1/runs/import", {}), 400, "invalid_field", /^path[: ]/);
  await expectError(
    await post("/v1/runs/import", { path: join(t.config.dataDir, "missing") }),
    404,
    "folder_not_found",
    /^path: no such folder/,
  );
  const empty = join(t.config.dataDir, "empty-run");
  mkdirSync(empty, { recursive: true });
  await expectError(
    await post("/v1/runs/import", { path: empty }),
    400,
    "no_events_file",
    /events\.jsonl/,
  );
  writeFileSync(join(empty, "events.jsonl"), '{"type":"train","time":1,"step":1,"loss":1}\n');
  await expectError(
    await post("/v1/runs/import", { path: empty }),
    400,
    "no_config_event",
    /config event/,
  );

  await expectError(
    await post("/v1/runs", { kind: "autoencoder", config: "huge", variant: "se" }),
    400,
    "invalid_field",
    /^config[: ]/,
  );
  await expectError(
    await post("/v1/runs", { kind: "autoencoder", config: "tiny" }),
    400,
    "invalid_field",
    /^variant[: ]/,
  );
  await expectError(
    await post("/v1/runs", { kind: "vae", config: "tiny" }),
    400,
    "invalid_field",
    /^kind[: ]/,
  );
  await expectError(
    await post("/v1/runs", { kind: "diffusion", config: "tiny", ae_run_id: "nope" }),
    404,
    "unknown_run",
    /^ae_run_id[: ]/,
  );
  // The shipped AE runs have no checkpoint in git.
  await expectError(
    await post("/v1/runs", { kind: "diffusion", config: "tiny", ae_run_id: "ae-small-se" }),
    409,
    "autoencoder_not_ready",
    /^ae_run_id: .*last\.pt/,
  );
  await expectError(
    await post("/v1/runs", { kind: "diffusion", config: "tiny", ae_run_id: "dit-small-se" }),
    400,
    "invalid_field",
    /is a diffusion run/,
  );
  await expectError(
    await post("/v1/runs", {
      kind: "autoencoder",
      config: "tiny",
      variant: "se",
      run_id: "ae-small-se",
    }),
    409,
    "run_exists",
    /^run_id[: ]/,
  );
});

async function waitForRun(id: string, timeoutMs = 240_000): Promise<Run> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { run } = (await (await get(`/v1/runs/${id}`)).json()) as { run: Run };
    if (run.status !== "running") return run;
    if (Date.now() > deadline) throw new Error(`run ${id} still running at step ${run.step}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test("a tiny autoencoder run and a diffusion run on it, started through POST /v1/runs", async () => {
  const res = await post("/v1/runs", {
    kind: "autoencoder",
    config: "tiny",
    variant: "se",
    run_id: "ae-tiny-api",
    threads: 1,
  });
  const body = (await res.json()) as { run: Run & { folder: string; source: string } };
  assert.equal(res.status, 202, JSON.stringify(body));
  assert.equal(res.headers.get("location"), "/v1/runs/ae-tiny-api");
  assert.equal(body.run.status, "running");
  assert.equal(body.run.source, "local");
  assert.equal(body.run.folder, join(t.config.runsDir, "ae-tiny-api"));
  // While it trains, events reach SQLite (a step > 0 before the end).
  let sawProgress = false;
  for (let i = 0; i < 1200; i++) {
    const { run } = (await (await get("/v1/runs/ae-tiny-api")).json()) as { run: Run };
    if (run.status === "running" && run.step > 0) sawProgress = true;
    if (run.status !== "running") break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const ae = await waitForRun("ae-tiny-api");
  const log = join(t.config.runsDir, "ae-tiny-api", "train.log");
  assert.equal(ae.status, "finished", existsSync(log) ? readFileSync(log, "utf8") : "no log");
  assert.equal(ae.step, 20);
  assert.ok(sawProgress || ae.step === 20);
  const loss = (await (await get("/v1/runs/ae-tiny-api/metrics?name=train/loss")).json()) as {
    points: { step: number }[];
  };
  assert.equal(loss.points.length, 20);
  const psnr = (await (await get("/v1/runs/ae-tiny-api/metrics?name=val/psnr")).json()) as {
    points: { step: number }[];
  };
  assert.deepEqual(
    psnr.points.map((p) => p.step),
    [10, 20],
  );

  const started = await post("/v1/runs", {
    kind: "diffusion",
    config: "tiny",
    ae_run_id: "ae-tiny-api",
    run_id: "dit-tiny-api",
    threads: 1,
  });
  assert.equal(started.status, 202, await started.clone().text());
  const dit = await waitForRun("dit-tiny-api");
  const ditLog = join(t.config.runsDir, "dit-tiny-api", "train.log");
  assert.equal(dit.status, "finished", existsSync(ditLog) ? readFileSync(ditLog, "utf8") : "");
  assert.equal(dit.autoencoderRunId, "ae-tiny-api");
  const detail = (await (await get("/v1/runs/dit-tiny-api")).json()) as {
    run: Run & { variant: string };
    metrics: string[];
    autoencoder: Run;
  };
  assert.equal(detail.run.variant, "se");
  assert.equal(detail.autoencoder.id, "ae-tiny-api");
  assert.ok(detail.metrics.includes("eval/fd_rand3d"), detail.metrics.join(","));
  const aeDetail = (await (await get("/v1/runs/ae-tiny-api")).json()) as { diffusionRuns: Run[] };
  assert.deepEqual(
    aeDetail.diffusionRuns.map((r) => r.id),
    ["dit-tiny-api"],
  );
});

test("/openapi.json describes the run routes", async () => {
  const doc = (await (await t.app.request("/openapi.json")).json()) as {
    paths: Record<string, Record<string, unknown>>;
    components: { schemas: Record<string, unknown> };
  };
  assert.deepEqual(Object.keys(doc.paths["/v1/runs"] ?? {}).sort(), ["get", "post"]);
  assert.ok(doc.paths["/v1/runs/import"]?.post);
  assert.ok(doc.paths["/v1/runs/{id}"]?.get);
  assert.ok(doc.paths["/v1/runs/{id}/metrics"]?.get);
  assert.ok(doc.components.schemas.StartRun);
});

test("an admin stops a live run: SIGTERM to its trainer, settled as interrupted", async () => {
  const res = await post("/v1/runs", {
    kind: "autoencoder",
    config: "tiny",
    variant: "baseline",
    run_id: "ae-tiny-stop",
    steps: 100_000,
    threads: 1,
  });
  assert.equal(res.status, 202, await res.clone().text());
  for (let i = 0; i < 2400; i++) {
    const { run } = (await (await get("/v1/runs/ae-tiny-stop")).json()) as { run: Run };
    if (run.step > 0 || run.status !== "running") break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await expectError(await post("/v1/runs/ae-tiny-stop/stop", {}, t.user), 403, "forbidden", /./);
  const stop = await post("/v1/runs/ae-tiny-stop/stop", {});
  assert.equal(stop.status, 202, await stop.clone().text());
  const run = (await waitForRun("ae-tiny-stop")) as Run & { error: string | null };
  assert.equal(run.status, "interrupted");
  assert.match(run.error ?? "", /SIGTERM/);
  await expectError(
    await post("/v1/runs/ae-tiny-stop/stop", {}),
    409,
    "run_not_running",
    /interrupted/,
  );
  await expectError(await post("/v1/runs/nope/stop", {}), 404, "not_found", /nope/);
});
