import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { decodedFrames, decodeLatents } from "../../src/pipeline/autoencoder/decode.ts";
import { encodeFile } from "../../src/pipeline/autoencoder/encode.ts";
import { reconstructFile } from "../../src/pipeline/autoencoder/reconstruct.ts";
import { writeNpy } from "../../src/pipeline/media/npy-file.ts";
import { framesToVideo, roundToHalf } from "../../src/pipeline/media/tensor.ts";
import { decodeFrames, probeVideo } from "../../src/pipeline/media/video.ts";
import { openSession, runSession, type Session } from "../../src/pipeline/onnx/onnx-session.ts";
import { PipelineError } from "../../src/pipeline/pipeline-error.ts";
import { ModelRuntime } from "../../src/pipeline/runtime.ts";
import { modelsDirWith, testVideo } from "./media.ts";
import { runPython } from "./python.ts";

// The fixture's weights rebuilt in PyTorch (make_tiny_bundle, seed 0): encode, decode and measure
// each frame of the first clip with diffusable.evaluation.metrics.
const TORCH_RECONSTRUCT = `
import sys, json, tempfile
from pathlib import Path
import numpy as np, torch
from diffusable.export.fixtures import make_tiny_bundle
from diffusable.evaluation.metrics import psnr, ssim
with tempfile.TemporaryDirectory() as scratch:  # the bundle's files are not needed here
    vae = make_tiny_bundle(Path(scratch))
x = torch.from_numpy(np.load(f"{sys.argv[1]}/clip0.npy")).float().div(127.5).sub(1)
x = x.permute(3, 0, 1, 2)[None]
with torch.no_grad():
    y = vae.decode_scaled(vae.encode_scaled(x)).clamp(-1, 1)
frames = range(x.shape[2])
print(json.dumps({"psnr": [float(psnr(y[:, :, i:i + 1], x[:, :, i:i + 1])) for i in frames],
                  "ssim": [float(ssim(y[:, :, i:i + 1], x[:, :, i:i + 1])) for i in frames]}))
`;

let dir = "";
let rt: ModelRuntime;
let encoder: Session;
let clip = "";
/** The clip's frames as the pipeline sees them: 8 fps, 32x32. */
const frames: Uint8Array[] = [];

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++)
    worst = Math.max(worst, Math.abs((a[i] as number) - (b[i] as number)));
  return worst;
}

/** encoder.onnx in one pass over these frames, called directly through onnx-session.ts. */
async function onePass(fs: Uint8Array[]): Promise<Float32Array> {
  const out = await runSession(encoder, {
    video: { dtype: "float32", dims: [1, 3, fs.length, 32, 32], data: framesToVideo(fs, 32, 32) },
  });
  return out.latent?.data as Float32Array;
}

/** Latent frames [from, to) of a (1, C, t, h, w) latent. */
function timeSlice(data: Float32Array, shape: number[], from: number, to: number): Float32Array {
  const [, c = 0, t = 0, h = 0, w = 0] = shape;
  const hw = h * w;
  const out: number[] = [];
  for (let ch = 0; ch < c; ch++)
    out.push(...data.subarray((ch * t + from) * hw, (ch * t + to) * hw));
  return Float32Array.from(out);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "encode-test-"));
  const models = modelsDirWith(dir, "tiny");
  rt = await ModelRuntime.open({ modelsDir: models, threads: 2, intraOpThreads: 1 });
  encoder = await openSession(join(models, "tiny", "encoder.onnx"));
  // 3 s at 8 fps = 24 frames; 48x40 so that the shorter side is resized and the width cropped.
  clip = testVideo(join(dir, "clip.mp4"), { size: "48x40", fps: 8, seconds: 3 });
  for await (const f of decodeFrames(clip, { fps: 8, size: 32, timeoutMs: 30_000 })) frames.push(f);
  assert.equal(frames.length, 24);
});
after(async () => {
  await encoder?.release();
  await rt?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("encodeFile", () => {
  test("clip mode: consecutive 9-frame clips, batched; shapes follow the manifest", async () => {
    const progress: number[] = [];
    const r = await encodeFile(rt, "tiny", clip, {
      mode: "clip",
      dtype: "float32",
      batch: 1,
      onProgress: (p) => progress.push(p.framesDone),
    });
    // 24 frames -> 2 clips of 9 (6 dropped); 9 = 1+4*2 frames -> 1+2 latent frames; 32/8 = 4
    assert.deepEqual(r.latents.shape, [2, 4, 3, 4, 4]);
    assert.equal(r.latents.dtype, "float32");
    assert.deepEqual(r.meta, {
      source: "clip.mp4",
      fps: 8,
      frames: 18,
      latentShape: [2, 4, 3, 4, 4],
      mode: "clip",
      dtype: "float32",
      size: { mode: "bundle", width: 32, height: 32 },
      tiles: 1,
      bundle: "tiny",
      bundleSha256: rt.bundleInfo("tiny").sha256,
    });
    assert.deepEqual(progress, [9, 18]);
    const per = 4 * 3 * 4 * 4;
    const data = r.latents.data as Float32Array;
    assert.ok(maxAbs(data.subarray(0, per), await onePass(frames.slice(0, 9))) <= 1e-4);
    assert.ok(maxAbs(data.subarray(per), await onePass(frames.slice(9, 18))) <= 1e-4);
  });

  test("whole mode (encoder_init + encoder_step with carried caches) equals one pass of encoder.onnx", async () => {
    const r = await encodeFile(rt, "tiny", clip, { mode: "whole", dtype: "float32" });
    // 24 frames -> cut to 1+4*5 = 21 -> 6 latent frames
    assert.deepEqual(r.latents.shape, [1, 4, 6, 4, 4]);
    assert.equal(r.meta.frames, 21);
    const data = r.latents.data as Float32Array;
    const whole = await onePass(frames.slice(0, 21));
    const err = maxAbs(data, whole);
    assert.ok(err <= 1e-4, `max abs error ${err}`);
    // One chunk per step (batch 1) instead of 16 frames then a 4-frame tail (batch 4): same latents.
    const single = await encodeFile(rt, "tiny", clip, {
      mode: "whole",
      dtype: "float32",
      batch: 1,
    });
    assert.ok(maxAbs(single.latents.data as Float32Array, data) <= 1e-4);
    // Causality: the first clip's latents are the first 3 latent frames of the whole video.
    const first = await onePass(frames.slice(0, 9));
    assert.ok(maxAbs(timeSlice(data, r.latents.shape, 0, 3), first) <= 1e-4);
  });

  test("float16 on request: values rounded to half precision", async () => {
    const r = await encodeFile(rt, "tiny", clip, { mode: "clip", dtype: "float16" });
    assert.equal(r.latents.dtype, "float16");
    assert.equal(r.meta.dtype, "float16");
    const data = r.latents.data as Float32Array;
    assert.deepEqual(roundToHalf(data), data);
    const exact = (await encodeFile(rt, "tiny", clip, { mode: "clip", dtype: "float32" })).latents
      .data as Float32Array;
    assert.ok(maxAbs(data, exact) <= 1e-2);
  });

  test("errors: unknown model, too short, bad fps, aborted", async () => {
    await assert.rejects(
      encodeFile(rt, "nope", clip, { mode: "clip", dtype: "float32" }),
      (err: unknown) => {
        assert.ok(err instanceof PipelineError);
        assert.equal(err.code, "unknown_model");
        assert.equal(err.status, 404);
        assert.match(err.message, /known models: tiny/);
        return true;
      },
    );
    const short = testVideo(join(dir, "short.mp4"), { fps: 8, seconds: 0.5 });
    await assert.rejects(encodeFile(rt, "tiny", short, { mode: "clip", dtype: "float32" }), {
      code: "too_short",
      message: /clip mode needs at least 9/,
    });
    await assert.rejects(encodeFile(rt, "tiny", clip, { mode: "clip", dtype: "float32", fps: 0 }), {
      code: "bad_option",
    });
    const controller = new AbortController();
    controller.abort(new Error("stop"));
    await assert.rejects(
      encodeFile(rt, "tiny", clip, { mode: "whole", dtype: "float32", signal: controller.signal }),
      { code: "aborted" },
    );
  });
});

describe("decodeLatents and reconstructFile", () => {
  test("latents decode to a playable video of the right frame count", async () => {
    const r = await encodeFile(rt, "tiny", clip, { mode: "clip", dtype: "float32" });
    const outPath = join(dir, "decoded.mp4");
    assert.deepEqual(await decodeLatents(rt, "tiny", r.latents, { format: "mp4", outPath }), {
      frames: 18,
    });
    const info = await probeVideo(outPath);
    assert.deepEqual([info.width, info.height, info.frames, info.fps], [32, 32, 18, 8]);
  });

  test("long latents decode in windows with context, giving the frames of one call", async () => {
    // 40 latent frames -> 1 + 4 * 39 = 157 video frames; the tiny decoder's context bound is 28.
    const shape = [1, 4, 40, 4, 4];
    const data = Float32Array.from({ length: 4 * 40 * 16 }, (_, i) => Math.sin(i * 0.37) * 1.5);
    const latents = { dtype: "float32" as const, shape, data };
    const collect = async (window: number) => {
      const out: Uint8Array[] = [];
      for await (const f of decodedFrames(rt, rt.loaded("tiny"), latents, { window })) out.push(f);
      return out;
    };
    const once = await collect(1000);
    const windowed = await collect(4);
    assert.equal(once.length, 157);
    assert.equal(windowed.length, 157);
    let worst = 0;
    once.forEach((f, i) => {
      worst = Math.max(worst, maxAbs(f, windowed[i] as Uint8Array));
    });
    assert.ok(worst <= 1, `frames differ by up to ${worst}/255`);
  });

  test("latents of the wrong shape are refused", async () => {
    const bad = { dtype: "float32" as const, shape: [1, 3, 2, 4, 4], data: new Float32Array(96) };
    await assert.rejects(
      decodeLatents(rt, "tiny", bad, { format: "gif", outPath: join(dir, "x.gif") }),
      {
        code: "bad_latents",
        status: 400,
        message: /3 channels, the model has 4/,
      },
    );
  });

  test("reconstruction metrics equal PyTorch's on the same frames and weights", async () => {
    const r = await reconstructFile(rt, "tiny", clip, {
      format: "mp4",
      outPath: join(dir, "r.mp4"),
    });
    const data = new Uint8Array(9 * 32 * 32 * 3);
    frames.slice(0, 9).forEach((f, i) => {
      data.set(f, i * f.length);
    });
    await writeNpy(join(dir, "clip0.npy"), { dtype: "uint8", shape: [9, 32, 32, 3], data });
    const expected = JSON.parse(runPython(["-c", TORCH_RECONSTRUCT, dir]));
    for (let i = 0; i < 9; i++) {
      // TypeScript measures the reconstruction after rounding it to 8-bit frames.
      assert.ok(Math.abs((r.psnr[i] as number) - expected.psnr[i]) < 0.05, `psnr of frame ${i}`);
      assert.ok(Math.abs((r.ssim[i] as number) - expected.ssim[i]) < 0.005, `ssim of frame ${i}`);
    }
  });

  test("reconstruction gives per-frame PSNR and SSIM", async () => {
    const outPath = join(dir, "recon.webm");
    const r = await reconstructFile(rt, "tiny", clip, { format: "webm", outPath });
    assert.equal(r.frames, 18);
    assert.equal(r.psnr.length, 18);
    assert.equal(r.ssim.length, 18);
    // A random-weight model reconstructs badly, but the numbers must be real ones.
    assert.ok(r.psnr.every((v) => Number.isFinite(v) && v > 0 && v <= 100));
    assert.ok(r.ssim.every((v) => v >= -1 && v <= 1));
    assert.equal((await probeVideo(outPath)).codec, "vp9");
  });
});
