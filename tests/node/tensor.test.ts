import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { writeNpy } from "../../src/pipeline/media/npy-file.ts";
import {
  concatTime,
  framesToVideo,
  psnr,
  roundToHalf,
  roundToHalfInPlace,
  ssim,
  TimeAccumulator,
  videoToFrames,
} from "../../src/pipeline/media/tensor.ts";
import { runPython } from "./python.ts";

// diffusable.evaluation.metrics on the same two frames, as (1, 3, 1, H, W) videos in [-1, 1].
const METRICS = `
import sys, json, numpy as np, torch
from diffusable.evaluation.metrics import psnr, ssim
a, b = (torch.from_numpy(np.load(f"{sys.argv[1]}/{n}.npy")).float() for n in ("a", "b"))
def video(x):  # (H, W, 3) uint8 -> (1, 3, 1, H, W) in [-1, 1]
    return (x / 127.5 - 1).permute(2, 0, 1)[None, :, None]
print(json.dumps({"psnr": float(psnr(video(a), video(b))), "ssim": float(ssim(video(a), video(b)))}))
`;

function frame(h: number, w: number, seed: number, noise: number, base?: Uint8Array): Uint8Array {
  const out = new Uint8Array(h * w * 3);
  let x = seed;
  for (let i = 0; i < out.length; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    const r = (x / 2147483648 - 0.5) * 2 * noise;
    const v = base ? (base[i] as number) + r : ((i * 7) % 251) + r;
    out[i] = Math.min(255, Math.max(0, Math.round(v)));
  }
  return out;
}

test("PSNR and SSIM agree with diffusable.evaluation.metrics", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tensor-test-"));
  try {
    const [h, w] = [24, 20];
    const a = frame(h, w, 1, 60);
    const b = frame(h, w, 2, 30, a);
    await writeNpy(join(dir, "a.npy"), { dtype: "uint8", shape: [h, w, 3], data: a });
    await writeNpy(join(dir, "b.npy"), { dtype: "uint8", shape: [h, w, 3], data: b });
    const expected = JSON.parse(runPython(["-c", METRICS, dir]));
    assert.ok(
      Math.abs(psnr(a, b) - expected.psnr) < 1e-3,
      `psnr ${psnr(a, b)} vs ${expected.psnr}`,
    );
    assert.ok(
      Math.abs(ssim(a, b, h, w) - expected.ssim) < 1e-4,
      `ssim ${ssim(a, b, h, w)} vs ${expected.ssim}`,
    );
    assert.equal(psnr(a, a), 100);
    assert.ok(Math.abs(ssim(a, a, h, w) - 1) < 1e-12);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("frames -> video -> frames is the identity; concatTime joins along time", () => {
  const frames = [frame(4, 6, 3, 100), frame(4, 6, 4, 100)];
  const video = framesToVideo(frames, 4, 6);
  assert.ok(video.every((v) => v >= -1 && v <= 1));
  assert.deepEqual(videoToFrames(video, [1, 3, 2, 4, 6]), frames);
  // two channels, hw = 1: parts (1, 2, 1) and (1, 2, 2) -> (1, 2, 3)
  const joined = concatTime([Float32Array.from([1, 2]), Float32Array.from([3, 4, 5, 6])], 2, 1);
  assert.deepEqual(Array.from(joined), [1, 3, 4, 2, 5, 6]);
});

test("TimeAccumulator gives concatTime's latents whatever its first guess; half rounding in place", () => {
  const [c, hw] = [3, 4];
  let seed = 7;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31 - 0.5;
  };
  const parts = [1, 4, 4, 4, 2].map((t) => Float32Array.from({ length: c * t * hw }, rand));
  const expected = Array.from(concatTime(parts, c, hw));
  for (const guess of [1, 5, 15, 40]) {
    const acc = new TimeAccumulator(c, hw, guess);
    for (const part of parts) acc.push(part);
    assert.equal(acc.frames, 15);
    assert.deepEqual(Array.from(acc.finish()), expected, `first guess ${guess}`);
  }
  const values = Float32Array.from({ length: 1000 }, () => rand() * 1e3);
  assert.deepEqual(Array.from(roundToHalfInPlace(values.slice())), Array.from(roundToHalf(values)));
});
