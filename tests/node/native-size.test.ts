// Encodings and reconstructions at the video's own size (docs/bundle.md "Tiling"): tiled encode
// and decode equal the untiled ones on the shipped conv bundle, and through the API, native size
// rounding and aspect, the DIFFUSABLE_MAX_PIXELS 422 before the 202, and the size in every
// output's metadata (real ffmpeg and onnxruntime, no mocks).

import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { encodeClipInTiles } from "../../src/pipeline/autoencoder/encode.ts";
import { tensorOf } from "../../src/pipeline/autoencoder/model-io.ts";
import { decodeInTiles } from "../../src/pipeline/autoencoder/reconstruct.ts";
import {
  nativeDims,
  type Tiling,
  tileStarts,
  tilesOf,
  tileVideo,
} from "../../src/pipeline/autoencoder/tiling.ts";
import { decodeFrames } from "../../src/pipeline/media/video.ts";
import { ModelRuntime } from "../../src/pipeline/runtime.ts";
import { ffmpegMake } from "./media.ts";
import { REPO_ROOT } from "./python.ts";
import { tempDir } from "./server-helpers.ts";

const maxAbs = (a: Float32Array, b: Float32Array) => {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
};

describe("tiling on the shipped conv bundle", () => {
  let rt: ModelRuntime;
  const work = tempDir("tiling");
  before(async () => {
    rt = await ModelRuntime.open({ modelsDir: join(REPO_ROOT, "models"), threads: 1 });
  });
  after(() => rt.close());

  test("tiled encode and decode equal the untiled ones (320x256, 6 tiles)", async (t) => {
    const b = rt.loaded("small-se");
    const m = b.manifest;
    assert.ok(m.tiling, "the shipped manifest states its tiling");
    const dims = { width: 320, height: 256 };
    // Textured frames (a flat picture hides padding effects): testsrc2 under strong noise.
    const path = ffmpegMake([
      "-f",
      "lavfi",
      "-i",
      "testsrc2=s=320x256:r=8:d=1",
      "-vf",
      "noise=alls=60:allf=t",
      "-c:v",
      "libx264",
      "-qp",
      "0",
      "-preset",
      "ultrafast",
      join(work, "noisy.mp4"),
    ]);
    const clip: Uint8Array[] = [];
    for await (const f of decodeFrames(path, {
      size: 64,
      frame: dims,
      maxFrames: 5,
      timeoutMs: 60_000,
    }))
      clip.push(f);
    assert.equal(clip.length, 5);
    // The manifest's margin and blend with a smaller tile, so that a moderate frame has tiles.
    const tiling: Tiling = {
      tile: 26,
      margin: m.tiling.margin_latents,
      blend: m.tiling.blend_latents,
    };
    const tiles = tilesOf(32, 40, tiling, 8);
    assert.equal(tiles.length, 6);
    const whole = await rt.run(b, "encoder", {
      video: {
        dtype: "float32",
        dims: [1, 3, 5, 256, 320],
        data: tileVideo(clip, 320, 0, 0, 256, 320),
      },
    });
    const untiled = tensorOf(whole, "latent").data as Float32Array;
    const tiled = await encodeClipInTiles(rt, b, clip, dims, tiles);
    const encErr = maxAbs(tiled, untiled);
    // Without the margin the seams (1-2 cells from a tile edge here) show: what the margin buys.
    const bare = await encodeClipInTiles(
      rt,
      b,
      clip,
      dims,
      tilesOf(32, 40, { tile: 22, margin: 0, blend: 2 }, 8),
    );
    const bareErr = maxAbs(bare, untiled);
    const dec = await rt.run(b, "decoder", {
      latent: { dtype: "float32", dims: [1, 16, 2, 32, 40], data: untiled.slice() },
    });
    const untiledVideo = tensorOf(dec, "video").data as Float32Array;
    const tiledVideo = await decodeInTiles(rt, b, untiled, dims, tiles);
    const decErr = maxAbs(tiledVideo, untiledVideo);
    t.diagnostic(
      `max |tiled - untiled|: latents ${encErr.toExponential(2)} (margin 0: ${bareErr.toExponential(2)}), video ${decErr.toExponential(2)}`,
    );
    // Every value kept from a tile lies outside the padding's reach (the margin covers the
    // receptive field, tests/python/test_conv_vae.py), so what is left is float rounding: the
    // tiles run streamed in time (encoder_init + encoder_step, equal to one call to 1e-4 in
    // onnx-parity) on other shapes than the whole frame. Measured 1.4e-6 on latents of unit
    // scale and 6e-8 on pixels in [-1, 1]; 1e-4 (the streaming parity bound, 1/80 of one 8-bit
    // level) holds them. Without the margin the same seams give 1.3e-2.
    assert.ok(encErr < 1e-4, `latents differ by ${encErr}`);
    assert.ok(decErr < 1e-4, `video differs by ${decErr}`);
    assert.ok(bareErr > 100 * encErr && bareErr > 1e-3, `margin 0 differs by only ${bareErr}`);
  });
});

test("tile starts cover the axis with overlaps of at least 2 x margin + blend", () => {
  const t: Tiling = { tile: 48, margin: 8, blend: 2 };
  for (const n of [48, 49, 66, 67, 135, 240, 1000]) {
    const s = tileStarts(n, t);
    assert.equal(s[0], 0);
    assert.equal((s.at(-1) as number) + 48, n);
    for (let i = 1; i < s.length; i++)
      assert.ok((s[i - 1] as number) + 48 - (s[i] as number) >= 18, `${n}: ${s}`);
  }
  assert.deepEqual(tileStarts(40, t), [0]);
});

test("native size rounds each side to the spatial factor, keeping the whole picture", () => {
  const m = { spatial_factor: 8 } as Parameters<typeof nativeDims>[0];
  assert.deepEqual(nativeDims(m, 1920, 1080), { width: 1920, height: 1080 });
  assert.deepEqual(nativeDims(m, 100, 60), { width: 104, height: 64 });
  assert.deepEqual(nativeDims(m, 99, 61), { width: 96, height: 64 });
  assert.deepEqual(nativeDims(m, 8, 3), { width: 8, height: 8 });
});
