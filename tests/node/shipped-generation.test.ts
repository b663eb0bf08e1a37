// The shipped bundles generate: a real server on models/ answers one request per class of every
// bundle that has a denoiser with a playable mp4 of the bundle's default shape (ffprobe reads it).

import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { probeVideo } from "../../src/pipeline/media/video.ts";
import type { BundleInfo } from "../../src/pipeline/runtime.ts";
import { REPO_ROOT } from "./python.ts";
import { auth, startTestServer, type TestServer, tempDir } from "./server-helpers.ts";

let server: TestServer;
const work = tempDir("shipped-gen");

before(async () => {
  server = await startTestServer({ DIFFUSABLE_MODELS_DIR: join(REPO_ROOT, "models") });
});
after(async () => {
  await server.close();
});

async function models(): Promise<BundleInfo[]> {
  const res = await fetch(`${server.url}/v1/models`, { headers: auth(server.user) });
  assert.equal(res.status, 200);
  return ((await res.json()) as { models: BundleInfo[] }).models;
}

test("both shipped variants can generate", async () => {
  const generators = (await models()).filter((m) => m.generate);
  assert.deepEqual(generators.map((m) => m.variant).sort(), ["baseline", "se"]);
});

test("a generation request for each class of each shipped bundle returns a playable video", async (t) => {
  for (const model of (await models()).filter((m) => m.generate)) {
    for (const label of model.classes) {
      const res = await fetch(`${server.url}/v1/generations`, {
        method: "POST",
        headers: { ...auth(server.user), "content-type": "application/json", prefer: "wait=120" },
        body: JSON.stringify({ model: model.name, label, seed: 11, format: "mp4" }),
      });
      const job = (await res.json()) as { status: string; outputs: { url: string }[] };
      assert.equal(job.status, "succeeded", `${model.name}/${label}: ${JSON.stringify(job)}`);
      const content = await fetch(`${server.url}${job.outputs[0]?.url}`, {
        headers: auth(server.user),
      });
      assert.equal(content.status, 200);
      const file = join(work, `${model.name}-${label}.mp4`);
      writeFileSync(file, Buffer.from(await content.arrayBuffer()));
      const info = await probeVideo(file);
      assert.equal(info.width, model.resolution);
      assert.equal(info.height, model.resolution);
      assert.equal(info.frames, model.frames.default, `${model.name}/${label}`);
    }
    t.diagnostic(`${model.name}: ${model.classes.length} classes generated and probed`);
  }
});

test("a request without a model uses the SE bundle", async () => {
  const res = await fetch(`${server.url}/v1/generations`, {
    method: "POST",
    headers: { ...auth(server.user), "content-type": "application/json", prefer: "wait=120" },
    body: JSON.stringify({ label: "bouncing_balls", seed: 3, format: "npy" }),
  });
  const job = (await res.json()) as { status: string; model: string };
  assert.equal(job.model, "small-se");
  assert.equal(job.status, "succeeded");
});
