// /v1/generations through app.request(): one 400 per bad request naming the field, a generation
// run to the end with its content (same seed -> same bytes), cancel within one step, and a
// generation left running by a crash resumed on start; concurrent generations share denoiser calls
// and give the same bytes as one at a time; without "model", the default bundle.

import assert from "node:assert/strict";
import { cpSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { ModelRuntime } from "../../src/pipeline/runtime.ts";
import { defaultModelOf } from "../../src/pipeline/work/default-model.ts";
import type { GenerationOptions } from "../../src/pipeline/work/generation-job.ts";
import { JobRunner } from "../../src/pipeline/work/job-runner.ts";
import { closeDb, type Db, openDb } from "../../src/store/db.ts";
import { getJob, insertJob, setItem, setJob } from "../../src/store/job-rows.ts";
import { sqliteStore } from "../../src/store/sqlite-store.ts";
import { REPO_ROOT } from "./python.ts";
import {
  auth,
  fixtureModelsDir,
  MODEL,
  openTestApp,
  type TestApp,
  tempDir,
} from "./server-helpers.ts";

let t: TestApp;

/** A runner of its own (generations `concurrency` at a time) on a database. */
const runnerOn = (db: Db, runtime: ModelRuntime, dataDir: string, concurrency = 1) =>
  new JobRunner({
    store: sqliteStore(db),
    runtime,
    dataDir,
    concurrency: { autoencoder: 1, generation: concurrency },
  });

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

async function waitFor(
  id: string,
  done = (g: Gen) => !["queued", "running"].includes(g.status),
  secret = t.user,
) {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const res = await get(`/v1/generations/${id}`, secret);
    assert.equal(res.status, 200);
    const g = (await res.json()) as Gen;
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
  ["n = 100", { n: 100 }, "n"],
  ["unknown format", { format: "avi" }, "format"],
  ["frames 1 (the fixture decodes at least 5)", { frames: 1 }, "frames"],
] as const) {
  test(`POST /v1/generations: ${name} is a 400 naming ${field}`, async () => {
    const res = await post({ ...base, ...extra });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, "invalid_field");
    assert.match(body.error.message, new RegExp(`^${field}[: ]`));
  });
}

test("POST /v1/generations: an unknown model is a 404 unknown_model listing the models", async () => {
  const res = await post({ ...base, model: "nope" });
  assert.equal(res.status, 404);
  const body = (await res.json()) as { error: { code: string; message: string } };
  assert.equal(body.error.code, "unknown_model");
  assert.match(
    body.error.message,
    new RegExp(`^model: unknown model "nope"; known models: .*${MODEL}`),
  );
});

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
    // The one file-sending helper: ETag -> 304, one byte range -> 206.
    const etag = content.headers.get("etag") as string;
    assert.equal(etag, `"${g.outputs[1]?.sha256}"`);
    const url = `/v1/generations/${g.id}/content?index=1`;
    const cached = await t.app.request(url, {
      headers: { ...auth(t.user), "if-none-match": etag },
    });
    assert.equal(cached.status, 304);
    const part = await t.app.request(url, { headers: { ...auth(t.user), range: "bytes=2-9" } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get("content-range"), `bytes 2-9/${bytes.length}`);
    assert.deepEqual(new Uint8Array(await part.arrayBuffer()), bytes.subarray(2, 10));
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
  await t.runner.idle();
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
  const { createKey } = await import("../../src/store/api-keys.ts");
  const other = createKey(t.db, "other", "user").secret;
  assert.equal((await get(`/v1/generations/${g.id}`, other)).status, 404);
  assert.equal((await get(`/v1/generations/${g.id}`, t.admin)).status, 200);
});

test("a generation left running by a crash is resumed on start", async () => {
  const g = (await (await post({ ...base, steps: 1 })).json()) as Gen;
  await waitFor(g.id);
  // Pretend the server died in the middle of it.
  setJob(t.db, g.id, { status: "running", step: 1 });
  setItem(t.db, g.id, 0, { status: "running", outputs: null, outputSha256: null });
  const rt = await ModelRuntime.open({ modelsDir: t.config.modelsDir, threads: 1 });
  const second = runnerOn(t.db, rt, t.config.dataDir);
  try {
    const report = await second.start();
    assert.deepEqual(report.resumed, [g.id]);
    await second.idle();
    const row = getJob(t.db, g.id)?.job;
    assert.equal(row?.status, "succeeded");
    assert.equal(row?.attempts, 2);
  } finally {
    await second.stop();
    await rt.close();
  }
});

test("Prefer: wait=N answers 200 with the finished generation", async () => {
  const res = await t.app.request("/v1/generations", {
    method: "POST",
    headers: { ...auth(t.user), "content-type": "application/json", prefer: "wait=60" },
    body: JSON.stringify({ ...base, steps: 2, seed: 5 }),
  });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("preference-applied"), "wait=60");
  const g = (await res.json()) as Gen;
  assert.equal(g.status, "succeeded");
  assert.equal(g.outputs.length, 1);
});

test("Idempotency-Key: a retried request returns the same job; another body is refused", async () => {
  const send = (body: unknown) =>
    t.app.request("/v1/generations", {
      method: "POST",
      headers: { ...auth(t.user), "content-type": "application/json", "idempotency-key": "k-1" },
      body: JSON.stringify(body),
    });
  const first = (await (await send({ ...base, seed: 9 })).json()) as Gen;
  const retry = await send({ ...base, seed: 9 });
  assert.equal(retry.headers.get("idempotent-replayed"), "true");
  assert.equal(((await retry.json()) as Gen).id, first.id);
  const other = await send({ ...base, seed: 10 });
  assert.equal(other.status, 422);
  assert.equal(
    ((await other.json()) as { error: { code: string } }).error.code,
    "idempotency_key_reused",
  );
  await waitFor(first.id);
});

test("GET /:id/events streams progress and ends with the final status", async () => {
  const g = (await (await post({ ...base, steps: 4, seed: 2 })).json()) as Gen;
  const res = await get(`/v1/generations/${g.id}/events`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /text\/event-stream/);
  const text = await res.text(); // the stream closes after the final event
  const events = [...text.matchAll(/event: (\w+)\ndata: (.*)\n/g)].map((m) => ({
    event: m[1],
    data: JSON.parse(m[2] as string) as Gen,
  }));
  const last = events.at(-1);
  assert.equal(last?.event, "done");
  assert.equal(last?.data.status, "succeeded");
  assert.equal(last?.data.step, 4);
  assert.ok(events.slice(0, -1).every((e) => e.event === "progress"));
  const steps = events.map((e) => e.data.step);
  assert.deepEqual(
    steps,
    [...steps].sort((a, b) => a - b),
    "steps never go back",
  );
});

test("GET /v1/generations pages newest first", async () => {
  const { createKey } = await import("../../src/store/api-keys.ts");
  const pager = createKey(t.db, "pager", "user").secret;
  const ids: string[] = [];
  for (let i = 0; i < 3; i++)
    ids.push(((await (await post({ ...base, steps: 1 }, pager)).json()) as Gen).id);
  const page1 = (await (await get("/v1/generations?limit=2", pager)).json()) as {
    jobs: Gen[];
    next: string | null;
  };
  assert.deepEqual(
    page1.jobs.map((g) => g.id),
    [ids[2], ids[1]],
  );
  assert.ok(page1.next);
  const page2 = (await (await get(page1.next as string, pager)).json()) as {
    jobs: Gen[];
    next: string | null;
  };
  assert.deepEqual(
    page2.jobs.map((g) => g.id),
    [ids[0]],
  );
  assert.equal(page2.next, null);
  for (const id of ids) await waitFor(id, undefined, pager);
});

test("/openapi.json describes the generation routes", async () => {
  type Body = { content: Record<string, { schema: { properties?: Record<string, unknown> } }> };
  const doc = (await (await t.app.request("/openapi.json")).json()) as {
    paths: Record<string, { post?: { requestBody: Body } }>;
  };
  for (const path of ["", "/{id}", "/{id}/content", "/{id}/events", "/{id}/cancel"]) {
    assert.ok(doc.paths[`/v1/generations${path}`], path);
  }
  const body = doc.paths["/v1/generations"]?.post?.requestBody.content["application/json"];
  const props = Object.keys(body?.schema.properties ?? {});
  for (const field of ["model", "label", "seed", "steps", "guidance", "frames", "format", "n"]) {
    assert.ok(props.includes(field), field);
  }
});

test("beyond the per-key limit or the queue bound: 429 with Retry-After", async () => {
  const small = await openTestApp({
    DIFFUSABLE_MAX_ACTIVE_JOBS: "2",
    DIFFUSABLE_MAX_QUEUED_GENERATIONS: "1",
  });
  try {
    const send = (secret: string) =>
      small.app.request("/v1/generations", {
        method: "POST",
        headers: { ...auth(secret), "content-type": "application/json" },
        body: JSON.stringify({ ...base, steps: 200 }),
      });
    const a = (await (await send(small.user)).json()) as Gen; // running (concurrency 1)
    // Wait until the runner has claimed it, so the queue holds only what follows.
    const deadline = Date.now() + 60_000;
    while (getJob(small.db, a.id)?.job.status !== "running" && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const b = await send(small.user); // queued: the key now has 2
    assert.equal(b.status, 202);
    const perKey = await send(small.user);
    assert.equal(perKey.status, 429);
    assert.equal(perKey.headers.get("retry-after"), "10");
    assert.equal(
      ((await perKey.json()) as { error: { code: string } }).error.code,
      "too_many_jobs",
    );
    const full = await send(small.admin); // another key, but the queue holds 1 already
    assert.equal(full.status, 429);
    assert.equal(((await full.json()) as { error: { code: string } }).error.code, "queue_full");
    await small.runner.cancel(((await b.json()) as Gen).id);
    await small.runner.cancel(a.id);
    await small.runner.idle();
  } finally {
    await small.close();
  }
});

test("a shipped bundle without denoiser.onnx cannot generate: 422 naming onnx.denoiser", async () => {
  const { ModelRuntime } = await import("../../src/pipeline/runtime.ts");
  const { createApp } = await import("../../src/server/app.ts");
  const rt = await ModelRuntime.open({ modelsDir: join(REPO_ROOT, "models"), threads: 1 });
  const generations = runnerOn(t.db, rt, t.config.dataDir);
  try {
    const app = createApp({
      store: t.store,
      db: t.db,
      runtime: rt,
      runner: generations,
      config: t.config,
    });
    const bundle = rt.bundles().find((m) => m.generate === null);
    if (!bundle) return; // every shipped bundle can generate: nothing to refuse
    const res = await app.request("/v1/generations", {
      method: "POST",
      headers: { ...auth(t.user), "content-type": "application/json" },
      body: JSON.stringify({ model: bundle.name, label: 0 }),
    });
    assert.equal(res.status, 422);
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, "cannot_generate");
    assert.match(body.error.message, /onnx\.denoiser/);
  } finally {
    await rt.close();
  }
});

test("concurrent generations share denoiser calls and give the bytes they give one at a time", async () => {
  const dir = tempDir("gen-batch");
  const rt = await ModelRuntime.open({ modelsDir: t.config.modelsDir, threads: 2 });
  const run = async (name: string, concurrency: number) => {
    const db = openDb(join(dir, name, "diffusable.sqlite"));
    const runner = runnerOn(db, rt, join(dir, name), concurrency);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const options: GenerationOptions = {
        label: i % 2,
        labelName: i % 2 ? "b" : "a",
        seed: 100 + i,
        steps: 3 + (i % 3),
        guidance: i === 4 ? 1 : 2,
        method: i === 3 ? "heun" : "euler",
        frames: 9,
        n: 1 + (i % 2),
        format: "npy",
      };
      const id = `gen_batch_${i}`;
      insertJob(db, {
        id,
        kind: "generate",
        keyId: null,
        model: MODEL,
        options: { ...options },
        items: Array.from({ length: options.n }, () => ({})),
        steps: options.steps,
      });
      ids.push(id);
    }
    await runner.start();
    await runner.idle();
    const rows = ids.map((id) => getJob(db, id));
    await runner.stop();
    closeDb(db);
    assert.ok(
      rows.every((r) => r?.job.status === "succeeded"),
      JSON.stringify(rows.map((r) => r?.job.errorMessage)),
    );
    return {
      hashes: rows.map((r) => r?.items.map((i) => i.outputSha256)),
      stats: runner.batcher.stats(),
    };
  };
  try {
    const alone = await run("alone", 1);
    const together = await run("together", 5);
    assert.deepEqual(together.hashes, alone.hashes);
    assert.equal(alone.stats.sharedCalls, 0);
    assert.ok(together.stats.sharedCalls > 0, JSON.stringify(together.stats));
    assert.ok(
      together.stats.calls < alone.stats.calls,
      JSON.stringify([alone.stats, together.stats]),
    );
  } finally {
    await rt.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("without model: 400 naming model when there is no default", async () => {
  // The fixture bundle is a "baseline" bundle and DIFFUSABLE_DEFAULT_MODEL is unset.
  const { model: _, ...body } = base;
  const res = await post(body);
  assert.equal(res.status, 400);
  const err = (await res.json()) as { error: { code: string; message: string } };
  assert.equal(err.error.code, "invalid_field");
  assert.match(err.error.message, /^model: /);
  assert.match(err.error.message, /DIFFUSABLE_DEFAULT_MODEL/);
});

test("without model: DIFFUSABLE_DEFAULT_MODEL names the bundle; an unknown one stops start-up", async () => {
  const { model: _, ...body } = base;
  const app = await openTestApp({ DIFFUSABLE_DEFAULT_MODEL: MODEL });
  try {
    const res = await app.app.request("/v1/generations", {
      method: "POST",
      headers: { ...auth(app.user), "content-type": "application/json", prefer: "wait=60" },
      body: JSON.stringify(body),
    });
    assert.equal(res.status, 200);
    const json = (await res.json()) as Gen & { model: string };
    assert.equal(json.model, MODEL);
    assert.equal(json.status, "succeeded");
  } finally {
    await app.close();
  }
  await assert.rejects(
    openTestApp({ DIFFUSABLE_DEFAULT_MODEL: "nope" }),
    (err: Error) =>
      /DIFFUSABLE_DEFAULT_MODEL="nope"/.test(err.message) && err.message.includes(MODEL),
  );
});

test("without model: the loaded se bundle (the first by name, preferring ones that generate)", async () => {
  const dir = tempDir("gen-default");
  const models = join(dir, "models");
  const copy = (name: string, variant: string, denoiser = true) => {
    cpSync(join(fixtureModelsDir(), MODEL), join(models, name), { recursive: true });
    const path = join(models, name, "manifest.json");
    const m = JSON.parse(readFileSync(path, "utf8"));
    m.variant = variant;
    if (!denoiser) {
      delete m.onnx.denoiser;
      rmSync(join(models, name, "denoiser.onnx"));
      delete m.files["denoiser.onnx"];
    }
    writeFileSync(path, JSON.stringify(m));
  };
  copy("a-se-nodenoiser", "se", false);
  copy("c-se", "se");
  copy("b-se", "se");
  copy("a-baseline", "baseline");
  const rt = await ModelRuntime.open({ modelsDir: models, threads: 1 });
  const generations = runnerOn(t.db, rt, t.config.dataDir);
  try {
    assert.equal(defaultModelOf(rt), "b-se");
    assert.equal(defaultModelOf(rt, "c-se"), "c-se");
    const { createApp } = await import("../../src/server/app.ts");
    const app = createApp({
      store: t.store,
      db: t.db,
      runtime: rt,
      runner: generations,
      config: t.config,
    });
    await generations.start();
    const { model: _, ...body } = base;
    const res = await app.request("/v1/generations", {
      method: "POST",
      headers: { ...auth(t.user), "content-type": "application/json", prefer: "wait=60" },
      body: JSON.stringify(body),
    });
    assert.equal(res.status, 200);
    const g = (await res.json()) as Gen & { model: string };
    assert.equal(g.model, "b-se");
    assert.equal(g.status, "succeeded");
  } finally {
    await generations.stop();
    await rt.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("generation errors are one sentence each, in the same words for the same limit", async () => {
  const messageOf = async (body: string) => {
    const res = await t.app.request("/v1/generations", {
      method: "POST",
      headers: { ...auth(t.user), "content-type": "application/json" },
      body,
    });
    assert.equal(res.status, 400, body);
    const json = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(json.error.code, "invalid_field");
    return json.error.message;
  };
  const json = (extra: Record<string, unknown>) => JSON.stringify({ ...base, ...extra });
  // 2^64 breaks two checks (safe integer, at most 2^53-1): one sentence, once.
  assert.equal(
    await messageOf(json({ seed: 2 ** 64 })),
    `seed must be at most ${Number.MAX_SAFE_INTEGER}.`,
  );
  assert.equal(await messageOf(JSON.stringify({ model: MODEL })), "label is required.");
  assert.equal(
    await messageOf(json({ label: [1] })),
    "label must be a string or a number (got a list).",
  );
  assert.equal(await messageOf(json({ steps: [1] })), "steps must be a number (got a list).");
  assert.equal(
    await messageOf(`{"model": "${MODEL}", "label": "a", "guidance": 1e999}`),
    "guidance must be a number (got Infinity).",
  );
  assert.equal(await messageOf(json({ n: {} })), "n must be a number (got an object).");
  // The bundle's limit is the one limit, in one sentence, whether just over it or far over.
  for (const steps of [201, 300, 100_000]) {
    assert.equal(
      await messageOf(json({ steps })),
      `steps must be an integer in 1..200 (model ${MODEL}'s sampler.max_steps), got ${steps}.`,
    );
  }
  assert.equal(
    await messageOf(json({ frames: 69 })),
    `frames must be at most 65 (model ${MODEL}'s frames.max), got 69.`,
  );
  assert.equal(
    await messageOf(json({ frames: 1 })),
    `frames must be at least 5 (the fewest model ${MODEL} decodes: manifest frames.min), got 1.`,
  );
  assert.equal(
    await messageOf(json({ frames: 8 })),
    "frames must follow the rule 1+4k (5, 9, ...), got 8.",
  );
});

test("manifest frames.min: a bundle that decodes one latent frame takes frames 1", async () => {
  const dir = tempDir("gen-frames-min");
  const models = join(dir, "models");
  cpSync(join(fixtureModelsDir(), MODEL), join(models, "one-frame"), { recursive: true });
  const path = join(models, "one-frame", "manifest.json");
  const m = JSON.parse(readFileSync(path, "utf8"));
  m.frames.min = 1;
  writeFileSync(path, JSON.stringify(m));
  const rt = await ModelRuntime.open({ modelsDir: models, threads: 1 });
  const generations = runnerOn(t.db, rt, t.config.dataDir);
  try {
    assert.deepEqual(rt.invalidBundles(), []);
    const { createApp } = await import("../../src/server/app.ts");
    const app = createApp({
      store: t.store,
      db: t.db,
      runtime: rt,
      runner: generations,
      config: t.config,
    });
    await generations.start();
    const res = await app.request("/v1/generations", {
      method: "POST",
      headers: { ...auth(t.user), "content-type": "application/json", prefer: "wait=60" },
      body: JSON.stringify({ ...base, model: "one-frame", frames: 1 }),
    });
    const g = (await res.json()) as Gen & { options: { frames: number } };
    assert.equal(res.status, 200, JSON.stringify(g));
    assert.equal(g.status, "succeeded");
    assert.equal(g.options.frames, 1);
    const npy = await app.request(`/v1/generations/${g.id}/content`, { headers: auth(t.user) });
    const { parseNpy } = await import("../../src/pipeline/media/npy-file.ts");
    assert.deepEqual(parseNpy(new Uint8Array(await npy.arrayBuffer())).shape, [1, 4, 1, 4, 4]);
  } finally {
    await generations.stop();
    await rt.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
