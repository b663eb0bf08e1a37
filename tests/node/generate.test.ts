// Generation with the fixture bundle (src/pipeline/generate.ts): seeded noise -> sampler with
// denoiser.onnx in the worker pool -> decoder -> files. Same seed, same bytes; bad settings are
// refused naming the field; a bundle without a denoiser cannot generate; abort stops the sampler.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { Bundle } from "../../src/pipeline/bundle.ts";
import {
  type GenerateFormat,
  generateFiles,
  generateLatents,
  resolveSettings,
} from "../../src/pipeline/generate/generate.ts";
import { readNpy } from "../../src/pipeline/media/npy-file.ts";
import { probeVideo } from "../../src/pipeline/media/video.ts";
import { PipelineError } from "../../src/pipeline/pipeline-error.ts";
import { ModelRuntime } from "../../src/pipeline/runtime.ts";
import { modelsDirWith } from "./media.ts";

let dir = "";
let rt: ModelRuntime;
let bundle: Bundle;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "generate-"));
  rt = await ModelRuntime.open({ modelsDir: modelsDirWith(dir), threads: 2 });
  bundle = rt.loaded("tiny");
});

after(async () => {
  await rt?.close();
  rmSync(dir, { recursive: true, force: true });
});

const sha = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

test("the bundle info says it can generate, with its sampler defaults", () => {
  const info = rt.bundleInfo("tiny");
  assert.equal(info.generate?.nullClass, 2);
  assert.equal(info.generate?.sampler.steps, 4);
  assert.ok(bundle.paths.denoiser?.endsWith("denoiser.onnx"));
});

for (const format of ["mp4", "webm", "gif", "npy"] as GenerateFormat[]) {
  test(`the same seed twice gives byte-identical ${format} files`, async () => {
    const run = async (tag: string, seed: number) => {
      const outPaths = [
        join(dir, `${tag}-${format}-0.${format}`),
        join(dir, `${tag}-${format}-1.${format}`),
      ];
      const settings = await generateFiles(rt, bundle, {
        label: "b",
        seed,
        steps: 3,
        guidance: 2,
        n: 2,
        format,
        outPaths,
      });
      return { settings, hashes: outPaths.map(sha), outPaths };
    };
    const a = await run("a", 7);
    const b = await run("b", 7);
    const c = await run("c", 8);
    assert.deepEqual(a.hashes, b.hashes);
    assert.notDeepEqual(a.hashes, c.hashes);
    assert.notEqual(a.hashes[0], a.hashes[1], "the two videos of a batch differ");
    assert.equal(a.settings.label, 1);
    assert.deepEqual(a.settings.shape, [2, 4, 3, 4, 4]);
    if (format === "npy") {
      const latent = await readNpy(a.outPaths[0] as string);
      assert.deepEqual(latent.shape, [1, 4, 3, 4, 4]);
    } else {
      const info = await probeVideo(a.outPaths[0] as string);
      assert.equal(info.width, 32);
      assert.equal(info.height, 32);
    }
  });
}

test("defaults come from the manifest; steps are reported", async () => {
  const seen: number[] = [];
  const { settings, latents } = await generateLatents(rt, bundle, {
    label: 0,
    seed: 1,
    onStep: (step, steps) => {
      seen.push(step);
      assert.equal(steps, 4);
    },
  });
  assert.deepEqual(seen, [1, 2, 3, 4]);
  assert.equal(settings.method, "euler");
  assert.equal(settings.guidance, 2);
  assert.equal(settings.frames, 9);
  assert.equal(latents.length, 4 * 3 * 4 * 4);
  assert.ok(latents.every(Number.isFinite));
});

test("bad settings are refused naming the field", () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ steps: 0 }, "steps"],
    [{ steps: 10_000 }, "steps"],
    [{ guidance: Number.NaN }, "guidance"],
    [{ guidance: -1 }, "guidance"],
    [{ frames: 8 }, "frames"],
    [{ frames: 69 }, "frames"],
    [{ label: "zebra" }, "label"],
    [{ label: 2 }, "label"],
    [{ n: 100 }, "n"],
    [{ seed: -1 }, "seed"],
  ];
  for (const [extra, field] of cases) {
    assert.throws(
      () => resolveSettings(bundle, { label: "a", seed: 0, ...extra }),
      (err: unknown) =>
        err instanceof PipelineError && err.status === 400 && err.message.startsWith(`${field} `),
      JSON.stringify(extra),
    );
  }
});

test("a bundle without a denoiser cannot generate (422)", () => {
  const { denoiser: _, ...onnx } = bundle.manifest.onnx;
  const without: Bundle = {
    ...bundle,
    manifest: { ...bundle.manifest, onnx },
    paths: { ...bundle.paths, denoiser: undefined },
  } as Bundle;
  assert.throws(
    () => resolveSettings(without, { label: "a", seed: 0 }),
    (err: unknown) =>
      err instanceof PipelineError && err.status === 422 && /denoiser/.test(err.message),
  );
});

test("abort stops the sampler within one step", async () => {
  const controller = new AbortController();
  const seen: number[] = [];
  await assert.rejects(
    generateLatents(rt, bundle, {
      label: "a",
      seed: 3,
      steps: 50,
      signal: controller.signal,
      onStep: (step) => {
        seen.push(step);
        if (step === 2) controller.abort();
      },
    }),
    (err: Error) => err.name === "AbortError",
  );
  assert.deepEqual(seen, [1, 2]);
});
