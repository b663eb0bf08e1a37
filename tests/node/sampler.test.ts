// The TypeScript sampler against PyTorch's: diffusable.export.fixtures saves noise, labels and the
// outputs of flow.sample for several (method, steps, guidance); src/pipeline/generate/sampler.ts runs the
// same tiny denoiser.onnx from the same noise and must agree within the fixture's tolerance.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  type ContextMode,
  type SamplerMethod,
  sample,
  type VelocityFn,
} from "../../src/pipeline/generate/sampler.ts";
import { readNpy } from "../../src/pipeline/media/npy-file.ts";
import { openSession, runSession, type Session } from "../../src/pipeline/onnx/onnx-session.ts";
import { runPython } from "./python.ts";

interface SamplerFixture {
  noise: string;
  labels: string;
  null_class: number;
  runs: { method: SamplerMethod; steps: number; guidance: number; output: string }[];
  tolerance: number;
  /** flow.sample with given leading latent frames, on the context-trained tiny denoiser. */
  context: {
    noise: string;
    labels: string;
    null_class: number;
    runs: {
      model: string;
      mode: ContextMode;
      frames: number;
      context: string;
      method: SamplerMethod;
      steps: number;
      guidance: number;
      output: string;
    }[];
  };
}

const dir = mkdtempSync(join(tmpdir(), "sampler-"));
let session: Session;
let ctxSession: Session;
let fixture: SamplerFixture;

before(async () => {
  runPython(["-m", "diffusable.export.fixtures", "--out", dir], 300_000);
  fixture = JSON.parse(readFileSync(join(dir, "sampler.json"), "utf8")) as SamplerFixture;
  session = await openSession(join(dir, "bundle/denoiser.onnx"));
  ctxSession = await openSession(join(dir, "ctx/denoiser.onnx"));
});
after(async () => {
  await session?.release();
  await ctxSession?.release();
  rmSync(dir, { recursive: true, force: true });
});

const denoiser: VelocityFn = async (x, dims, t, labels) => {
  const b = dims[0] as number;
  const out = await runSession(session, {
    x: { data: x, dims: [...dims], dtype: "float32" },
    t: { data: new Float32Array(b).fill(t), dims: [b], dtype: "float32" },
    label: { data: labels, dims: [b], dtype: "int64" },
  });
  return out.v?.data as Float32Array;
};

/** The context-trained denoiser, fed its fourth input as denoiser.ts does: the given count per
 * row, or zeros when the sampler passes none ("replace" mode). */
const ctxDenoiser: VelocityFn = async (x, dims, t, labels, context) => {
  const b = dims[0] as number;
  const out = await runSession(ctxSession, {
    x: { data: x, dims: [...dims], dtype: "float32" },
    t: { data: new Float32Array(b).fill(t), dims: [b], dtype: "float32" },
    label: { data: labels, dims: [b], dtype: "int64" },
    context: { data: context ?? new BigInt64Array(b), dims: [b], dtype: "int64" },
  });
  return out.v?.data as Float32Array;
};

function maxAbsError(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++)
    worst = Math.max(worst, Math.abs((a[i] as number) - (b[i] as number)));
  return worst;
}

test("the TypeScript sampler matches PyTorch's from the same noise (Euler, Heun, guidance)", async (t) => {
  const noise = await readNpy(join(dir, fixture.noise));
  const labels = await readNpy(join(dir, fixture.labels));
  assert.equal(noise.dtype, "float32");
  assert.equal(labels.dtype, "int64");
  assert.ok(fixture.runs.length >= 3);
  for (const run of fixture.runs) {
    const expected = (await readNpy(join(dir, run.output))).data as Float32Array;
    const got = await sample(
      denoiser,
      noise.data as Float32Array,
      noise.shape,
      labels.data as BigInt64Array,
      {
        steps: run.steps,
        guidance: run.guidance,
        nullClass: fixture.null_class,
        method: run.method,
      },
    );
    const err = maxAbsError(got, expected);
    t.diagnostic(
      `${run.method} ${run.steps} steps, guidance ${run.guidance}: max abs error ${err.toExponential(2)}`,
    );
    assert.ok(err <= fixture.tolerance, `${run.method}/${run.steps}/${run.guidance}: ${err}`);
  }
});

test("with context latents, the TypeScript sampler matches PyTorch's (trained and replace modes)", async (t) => {
  const ctx = fixture.context;
  const noise = await readNpy(join(dir, ctx.noise));
  const labels = await readNpy(join(dir, ctx.labels));
  assert.deepEqual(new Set(ctx.runs.map((r) => r.mode)), new Set(["trained", "replace"]));
  for (const run of ctx.runs) {
    const given = await readNpy(join(dir, run.context));
    assert.equal(given.shape[2], run.frames);
    const expected = (await readNpy(join(dir, run.output))).data as Float32Array;
    const got = await sample(
      ctxDenoiser,
      noise.data as Float32Array,
      noise.shape,
      labels.data as BigInt64Array,
      {
        steps: run.steps,
        guidance: run.guidance,
        nullClass: ctx.null_class,
        method: run.method,
        context: { latents: given.data as Float32Array, frames: run.frames, mode: run.mode },
      },
    );
    const err = maxAbsError(got, expected);
    t.diagnostic(
      `${run.mode} k=${run.frames} ${run.method} ${run.steps} steps, guidance ${run.guidance}: max abs error ${err.toExponential(2)}`,
    );
    assert.ok(err <= fixture.tolerance, `${run.mode}/${run.frames}/${run.method}: ${err}`);
    // The given frames come out as given in both modes (replace: (1 - 0) c + 0 e at t = 0).
    const [b = 0, c = 0, frames = 0, h = 0, w = 0] = noise.shape;
    const hw = h * w;
    for (let rc = 0; rc < b * c; rc++) {
      const a = got.subarray(rc * frames * hw, (rc * frames + run.frames) * hw);
      const e = (given.data as Float32Array).subarray(
        rc * run.frames * hw,
        (rc + 1) * run.frames * hw,
      );
      assert.deepEqual([...a], [...e]);
    }
  }
});

test("one Euler step without guidance is x_1 - v(x_1, 1)", async () => {
  const x = new Float32Array([0.5, -1, 2, 0.25]);
  const v: VelocityFn = async (at) => at.map((a) => a * 2 + 1);
  const out = await sample(v, x, [1, 4], new BigInt64Array([0n]), {
    steps: 1,
    guidance: 1,
    nullClass: 1,
    method: "euler",
  });
  assert.deepEqual(
    [...out],
    [...x].map((a) => Math.fround(a - (a * 2 + 1))),
  );
});

test("bad arguments and aborts stop the sampler", async () => {
  const v: VelocityFn = async (at) => at;
  const opts = { steps: 0, guidance: 1, nullClass: 1, method: "euler" as const };
  await assert.rejects(
    sample(v, new Float32Array(2), [1, 2], new BigInt64Array(1), opts),
    /steps must be >= 1/,
  );
  await assert.rejects(
    sample(v, new Float32Array(2), [2, 1], new BigInt64Array(1), { ...opts, steps: 2 }),
    /1 labels for a batch of 2/,
  );
  const controller = new AbortController();
  let calls = 0;
  const stopping: VelocityFn = async (at) => {
    calls++;
    controller.abort();
    return at;
  };
  await assert.rejects(
    sample(stopping, new Float32Array(2), [1, 2], new BigInt64Array(1), {
      ...opts,
      steps: 10,
      signal: controller.signal,
    }),
    { name: "AbortError" },
  );
  assert.equal(calls, 1, "stops within one denoiser step");
});
