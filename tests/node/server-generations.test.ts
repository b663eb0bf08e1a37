// /v1/generations through app.request(): one 400 per bad request naming the field, a generation
// run to the end with its content (same seed -> same bytes), cancel within one step, and a
// generation left running by a crash resumed on start.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { GenerationRunner } from "../../src/pipeline/generations.ts";
import { getGeneration, setGeneration } from "../../src/pipeline/store/generations.ts";
import { auth, MODEL, openTestApp, type TestApp } from "./server-helpers.ts";

let t: TestApp;

before(async () => {
  t = await openTestApp();
});
after(() => t.close());

const post = (body: unknown, secret = t.user) =>
  t.app.request("/v1/generations", {
    method: "POST",
    headers: { ...auth(secret), "content-type": "application/json" },
    body: JSON.stringify(body),
  });

const get = (path: string, secret = t.user) => t.app.request(path, { headers: auth(secret) });

type Gen = {
  id: string;
  status: string;
  seed: number;
  step: number;
  steps: number;
  outputs: { index: number; sha256: string; url: string }[];
};

async function waitFor(id: string, done = (g: Gen) => !["queued", "running"].includes(g.status)) {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const g = (await (await get(`/v1/generations/${id}`)).json()) as Gen;
    if (done(g)) return g;
    if (Date.now() > deadline) throw new Error(`generation ${id} still ${g.status}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const base = { model: MODEL, label: "a", steps: 2, format: "npy" };

for (const [name, extra, field] of [
  ["steps 0", { steps: 0 }, "steps"],
  ["steps 10000", { steps: 10_000 }, "steps"],
  ["guidance NaN", { guidance: "NaN" }, "guidance"],
  ["negative guidance", { guidance: -1 }, "guidance"],
  ["frames not 1+4k", { frames: 8 }, "frames"],
  ["too many frames", { frames: 69 }, "frames"],
  ["unknown label", { label: "zebra" }, "label"],
  ["unknown model", { model: "nope" }, "model"],
  ["n = 100", { n: 100 }, "n"],
  ["unknown format", { format: "avi" }, "format"],
] as const) {
  test(`POST /v1/generations: ${name} is a 400 naming ${field}`, async () => {
    const res = await post({ ...base, ...extra });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, "invalid_field");
    assert.ok(body.error.message.startsWith(`${field}:`), body.error.message);
  });
}

test("a generation runs to the end; the same seed gives the same bytes", async () => {
  const shas: string[] = [];
  for (let i = 0; i < 2; i++) {
    const res = await post({ ...base, seed: 11, n: 2, format: "mp4", label: 1 });
    assert.equal(res.status, 202);
    const created = (await res.json()) as Gen;
    assert.equal(created.seed, 11);
    assert.equal(created.steps, 2);
    const g = await waitFor(created.id);
    assert.equal(g.status, "succeeded", JSON.stringify(g));
    assert.equal(g.step, 2);
    assert.equal(g.outputs.length, 2);
    const content = await get(`/v1/generations/${g.id}/content?index=1`);
    assert.equal(content.status, 200);
    assert.equal(content.headers.get("content-type"), "video/mp4");
    const bytes = new Uint8Array(await content.arrayBuffer());
    assert.ok(bytes.length > 0);
    shas.push(g.outputs[1]?.sha256 as string);
  }
  assert.equal(shas[0], shas[1]);
  assert.equal((await get("/v1/generations/gen_nope")).status, 404);
});

test("a generation without a seed reports the seed it used", async () => {
  const res = await post({ ...base, steps: 1 });
  const g = (await res.json()) as Gen;
  assert.ok(Number.isSafeInteger(g.seed));
  await waitFor(g.id);
});

test("cancel stops a generation within one denoiser step", async () => {
  const res = await post({ ...base, steps: 200 });
  const created = (await res.json()) as Gen;
  const running = await waitFor(created.id, (g) => g.step >= 1);
  assert.equal(running.status, "running");
  const canceled = await t.app.request(`/v1/generations/${created.id}/cancel`, {
    method: "POST",
    headers: auth(t.user),
  });
  assert.equal(canceled.status, 200);
  const stepAtCancel = ((await canceled.json()) as Gen).step;
  await t.generations.idle();
  const g = (await (await get(`/v1/generations/${created.id}`)).json()) as Gen;
  assert.equal(g.status, "canceled");
  assert.ok(g.step <= stepAtCancel + 1, `step ${g.step} after cancel at ${stepAtCancel}`);
  assert.ok(g.step < 200);
  const again = await t.app.request(`/v1/generations/${created.id}/cancel`, {
    method: "POST",
    headers: auth(t.user),
  });
  assert.equal(again.status, 409);
  const content = await get(`/v1/generations/${created.id}/content`);
  assert.equal(content.status, 409);
});

test("others' generations are not visible", async () => {
  const g = (await (await post({ ...base, steps: 1 })).json()) as Gen;
  await waitFor(g.id);
  const { createKey } = await import("../../src/pipeline/store/keys.ts");
  const other = createKey(t.db, "other", "user").secret;
  assert.equal((await get(`/v1/generations/${g.id}`, other)).status, 404);
  assert.equal((await get(`/v1/generations/${g.id}`, t.admin)).status, 200);
});

test("a generation left running by a crash is resumed on start", async () => {
  const g = (await (await post({ ...base, steps: 1 })).json()) as Gen;
  await waitFor(g.id);
  // Pretend the server died in the middle of it.
  setGeneration(t.db, g.id, { status: "running", step: 1, outputs: null, outputSha256: null });
  const { ModelRuntime } = await import("../../src/pipeline/runtime.ts");
  const rt = await ModelRuntime.open({ modelsDir: t.config.modelsDir, threads: 1 });
  const second = new GenerationRunner({
    db: t.db,
    runtime: rt,
    dataDir: t.config.dataDir,
    concurrency: 1,
  });
  try {
    const report = await second.start();
    assert.deepEqual(report.resumed, [g.id]);
    await second.idle();
    const row = getGeneration(t.db, g.id);
    assert.equal(row?.status, "succeeded");
    assert.equal(row?.attempts, 2);
  } finally {
    await second.stop();
    await rt.close();
  }
});
