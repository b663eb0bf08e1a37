// Shared denoiser calls (src/pipeline/generate/batcher.ts, docs/sampler.md "Batching"). First the premise:
// onnxruntime's CPU kernels give every row the same bits whatever batch it runs in, on the tiny
// fixture denoiser and on a compact-sized DiT (hidden 192, depth 6, 16 channels, 13 classes,
// weights stored as fp16 as in the shipped bundles).
// Then the contract built on it: generations sampled together (different steps, labels, guidance,
// methods) give byte-identical latents to the same generations sampled alone; the batch bound
// holds; a failing request does not fail the others; an aborted one leaves at once.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { Bundle } from "../../src/pipeline/bundle.ts";
import { DenoiserBatcher } from "../../src/pipeline/generate/batcher.ts";
import { denoiserVelocity } from "../../src/pipeline/generate/denoiser.ts";
import { extendFrames } from "../../src/pipeline/generate/extend.ts";
import { type GenerateOptions, generateLatents } from "../../src/pipeline/generate/generate.ts";
import { gaussianNoise } from "../../src/pipeline/generate/noise.ts";
import type { VelocityFn } from "../../src/pipeline/generate/sampler.ts";
import { openSession, runSession } from "../../src/pipeline/onnx/onnx-session.ts";
import { ModelRuntime } from "../../src/pipeline/runtime.ts";
import { modelsDirWith } from "./media.ts";
import { REPO_ROOT, runPython } from "./python.ts";

let dir = "";
let rt: ModelRuntime;
let bundle: Bundle;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "batcher-"));
  rt = await ModelRuntime.open({ modelsDir: modelsDirWith(dir), threads: 2 });
  bundle = rt.loaded("tiny");
});

after(async () => {
  await rt?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs rows `idx` of a fixed random input through the model in one call; returns per-row v. */
async function rowsOf(
  path: string,
  dims: [number, number, number, number],
  threads: number,
  batches: number[][],
): Promise<Map<number, Float32Array>[]> {
  const session = await openSession(path, { intraOpThreads: threads });
  const per = dims.reduce((a, d) => a * d, 1);
  const rows = 16;
  const xs = gaussianNoise(1, rows * per);
  const ts = Float32Array.from({ length: rows }, (_, i) => 1 - (i % 5) / 5);
  const labels = BigInt64Array.from({ length: rows }, (_, i) => BigInt(i % 3));
  try {
    const results: Map<number, Float32Array>[] = [];
    for (const idx of batches) {
      const x = new Float32Array(idx.length * per);
      idx.forEach((k, j) => {
        x.set(xs.subarray(k * per, (k + 1) * per), j * per);
      });
      const out = await runSession(session, {
        x: { dtype: "float32", dims: [idx.length, ...dims], data: x },
        t: {
          dtype: "float32",
          dims: [idx.length],
          data: Float32Array.from(idx, (k) => ts[k] ?? 0),
        },
        label: {
          dtype: "int64",
          dims: [idx.length],
          data: BigInt64Array.from(idx, (k) => labels[k] ?? 0n),
        },
      });
      const v = out.v?.data as Float32Array;
      results.push(new Map(idx.map((k, j) => [k, v.slice(j * per, (j + 1) * per)])));
    }
    return results;
  } finally {
    await session.release();
  }
}

const sameBits = (a: Float32Array, b: Float32Array) =>
  a.length === b.length && Buffer.compare(Buffer.from(a.buffer), Buffer.from(b.buffer)) === 0;

for (const [name, dims, model] of [
  ["the tiny fixture denoiser", [4, 3, 4, 4], () => bundle.paths.denoiser as string],
  [
    "a compact-sized DiT (64x64x17 latents, fp16-stored weights as shipped)",
    [16, 5, 8, 8],
    () => {
      runPython(
        ["bench/torch_generate.py", "--out", join(dir, "compact"), "--denoiser-only"],
        300_000,
      );
      return join(dir, "compact", "denoiser.onnx");
    },
  ],
] as const) {
  test(`onnxruntime CPU: every row of ${name} has the same bits at batch 1 and batch N`, async (t) => {
    const path = model();
    const batches = [
      ...Array.from({ length: 16 }, (_, k) => [k]),
      [3, 1],
      [0, 5, 10],
      [15, 14, 13, 12, 11, 10, 9, 8],
      Array.from({ length: 16 }, (_, k) => k),
    ];
    for (const threads of [1, 2, 4]) {
      const results = await rowsOf(
        path,
        [...dims] as [number, number, number, number],
        threads,
        batches,
      );
      const alone = new Map<number, Float32Array>();
      for (const m of results.slice(0, 16)) for (const [k, v] of m) alone.set(k, v);
      let rows = 0;
      for (const m of results.slice(16)) {
        for (const [k, v] of m) {
          assert.ok(sameBits(v, alone.get(k) as Float32Array), `${threads} threads, row ${k}`);
          rows++;
        }
      }
      t.diagnostic(`${threads} intra-op thread(s): ${rows} batched rows bit-identical to batch 1`);
    }
  });
}

const sha = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("hex");

const requests: GenerateOptions[] = [
  { label: "a", seed: 1, steps: 6, guidance: 2 },
  { label: "b", seed: 2, steps: 4, guidance: 1 },
  { label: 1, seed: 3, steps: 5, guidance: 3, method: "heun" },
  { label: "a", seed: 4, steps: 6, guidance: 2, n: 3 },
  { label: "b", seed: 5, steps: 3, guidance: 2, frames: 5 }, // another latent shape: its own group
];

async function alone(): Promise<string[]> {
  const out: string[] = [];
  for (const r of requests) out.push(sha((await generateLatents(rt, bundle, r)).latents));
  return out;
}

/** All requests at once through `batcher`: their first calls queue together, and their step
 * counts and methods differ, so later calls mix rows at different steps. */
async function together(batcher: DenoiserBatcher): Promise<string[]> {
  return Promise.all(
    requests.map(async (r) => sha((await generateLatents(rt, bundle, { ...r, batcher })).latents)),
  );
}

test("generations sampled together give byte-identical latents to the same ones alone", async (t) => {
  const expected = await alone();
  const batcher = new DenoiserBatcher(rt, { maxBatch: 8 });
  assert.deepEqual(await together(batcher), expected);
  const s = batcher.stats();
  t.diagnostic(JSON.stringify(s));
  assert.ok(s.sharedCalls > 0, "some calls were shared");
  assert.ok(s.peakRows <= 16);
  // Every row of every velocity evaluation went through the batcher exactly once. (How many calls
  // that took depends on timing: rows are also spread over idle workers.)
  const rows = requests.reduce((sum, r) => {
    const steps = r.steps as number;
    const evals = r.method === "heun" ? 2 * steps - 1 : steps;
    return sum + evals * (r.n ?? 1) * (r.guidance === 1 ? 1 : 2);
  }, 0);
  assert.equal(s.rows, rows);
});

test("fixedBatch pads every call to 2 * maxBatch rows and gives the same bytes", async () => {
  const expected = await alone();
  const batcher = new DenoiserBatcher(rt, { maxBatch: 3, fixedBatch: true });
  assert.deepEqual(await together(batcher), expected);
  assert.ok(batcher.stats().peakRows <= 6);
});

test("a call never holds more than 2 * maxBatch rows; larger requests are split", async () => {
  const batcher = new DenoiserBatcher(rt, { maxBatch: 2 });
  const big = { label: "a", seed: 9, steps: 2, guidance: 2, n: 5 }; // 10 rows per call
  const expected = sha((await generateLatents(rt, bundle, big)).latents);
  const got = await Promise.all([
    generateLatents(rt, bundle, { ...big, batcher }),
    generateLatents(rt, bundle, { ...big, seed: 10, n: 1, batcher }),
  ]);
  assert.equal(sha(got[0].latents), expected);
  assert.ok(batcher.stats().peakRows <= 4, JSON.stringify(batcher.stats()));
});

test("a failing request fails alone; the requests that shared its call succeed", async () => {
  const batcher = new DenoiserBatcher(rt, { maxBatch: 8 });
  const velocity = batcher.velocity(bundle);
  const per = 4 * 3 * 4 * 4;
  const x = gaussianNoise(7, 2 * per);
  const dims = [1, 4, 3, 4, 4];
  const good = (k: number) =>
    velocity(x.slice(k * per, (k + 1) * per), dims, 0.5, new BigInt64Array([BigInt(k)]));
  const expected = await Promise.all([good(0), good(1)]);
  const [a, bad, b] = await Promise.allSettled([
    good(0),
    velocity(x.slice(0, per), dims, 0.5, new BigInt64Array([99n])), // no such label
    good(1),
  ]);
  assert.equal(bad.status, "rejected");
  assert.equal(a.status, "fulfilled");
  assert.equal(b.status, "fulfilled");
  assert.ok(sameBits(a.value, expected[0] as Float32Array));
  assert.ok(sameBits(b.value, expected[1] as Float32Array));
  assert.ok(batcher.stats().isolatedRetries >= 1);
});

test("an aborted request leaves at once; the others go on", async () => {
  const batcher = new DenoiserBatcher(rt, { maxBatch: 8 });
  const controller = new AbortController();
  const seen: number[] = [];
  const [canceled, other] = await Promise.allSettled([
    generateLatents(rt, bundle, {
      label: "a",
      seed: 3,
      steps: 50,
      batcher,
      signal: controller.signal,
      onStep: (step) => {
        seen.push(step);
        if (step === 2) controller.abort();
      },
    }),
    generateLatents(rt, bundle, { label: "b", seed: 4, steps: 8, batcher }),
  ]);
  assert.equal(canceled.status, "rejected");
  assert.deepEqual(seen, [1, 2]);
  assert.equal(other.status, "fulfilled");
  const alone = await generateLatents(rt, bundle, { label: "b", seed: 4, steps: 8 });
  assert.equal(sha(other.value.latents), sha(alone.latents));
});

test("generations with and without context share calls and give the bytes they give alone (shipped context-trained denoiser)", async (t) => {
  const shipped = await ModelRuntime.open({ modelsDir: join(REPO_ROOT, "models"), threads: 2 });
  try {
    const b = shipped.loaded("small-se");
    assert.equal(b.manifest.denoiser_config?.context, true);
    // Input latents (1, 16, 3, 8, 8) as an encoder would give them: an image is its frame 0.
    const source = { latents: gaussianNoise(99, 16 * 3 * 64), frames: 3 };
    const image = { latents: source.latents.slice(0, 16 * 64), frames: 1 };
    const reqs: GenerateOptions[] = [
      { label: 0, seed: 1, steps: 3, frames: 9 },
      { label: 1, seed: 2, steps: 3, frames: 9, condition: { kind: "image" }, source: image },
      {
        label: 2,
        seed: 3,
        steps: 2,
        frames: 9,
        guidance: 1,
        condition: { kind: "image" },
        source: image,
      },
    ];
    // An extension by 8 frames (2 latent frames): one window of 5 latent frames with 3 given, the
    // same latent shape as the 9-frame ones above, so all share one group.
    const input = Array.from({ length: 9 }, (_, i) =>
      Uint8Array.from({ length: 64 * 64 * 3 }, (_, p) => (p * 7 + i * 13) % 256),
    );
    const extension = (model: VelocityFn) =>
      extendFrames(shipped, b, {
        input,
        newLatents: 2,
        n: 1,
        seed: 4,
        label: 3,
        steps: 3,
        guidance: 2,
        nullClass: b.manifest.null_class as number,
        method: "euler",
        contextMode: "trained",
        model,
      }).then((r) => {
        assert.deepEqual(r.windows, [{ context: 3, generated: 2, kept: 2 }]);
        return createHash("sha256")
          .update(Buffer.concat(r.frames[0] ?? []))
          .digest("hex");
      });
    const alone: string[] = [];
    for (const r of reqs) alone.push(sha((await generateLatents(shipped, b, r)).latents));
    alone.push(await extension(denoiserVelocity(shipped, b)));
    const batcher = new DenoiserBatcher(shipped, { maxBatch: 8 });
    const together = await Promise.all([
      ...reqs.map(async (r) => sha((await generateLatents(shipped, b, { ...r, batcher })).latents)),
      extension(batcher.velocity(b)),
    ]);
    assert.deepEqual(together, alone);
    const s = batcher.stats();
    t.diagnostic(JSON.stringify(s));
    assert.ok(s.sharedCalls > 0, "calls were shared");
    // Same seed and context, same bytes; another context, other bytes.
    const again = await generateLatents(shipped, b, reqs[1] as GenerateOptions);
    assert.equal(sha(again.latents), alone[1]);
    const other = { latents: gaussianNoise(98, 16 * 64), frames: 1 };
    const moved = await generateLatents(shipped, b, {
      ...(reqs[1] as GenerateOptions),
      source: other,
    });
    assert.notEqual(sha(moved.latents), alone[1]);
  } finally {
    await shipped.close();
  }
});
