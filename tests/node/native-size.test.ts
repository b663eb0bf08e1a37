// Encodings and reconstructions at the video's own size (docs/bundle.md "Tiling"): tiled encode
// and decode equal the untiled ones on the shipped conv bundle, and through the API, native size
// rounding and aspect, the DIFFUSABLE_MAX_PIXELS 422 before the 202, and the size in every
// output's metadata (real ffmpeg and onnxruntime, no mocks).

import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { encodeClipInTiles, encodeFile } from "../../src/pipeline/autoencoder/encode.ts";
import { tensorOf } from "../../src/pipeline/autoencoder/model-io.ts";
import { decodeInTiles } from "../../src/pipeline/autoencoder/reconstruct.ts";
import {
  nativeDims,
  type Tiling,
  tileStarts,
  tilesOf,
  tileVideo,
} from "../../src/pipeline/autoencoder/tiling.ts";
import { videoToFrames } from "../../src/pipeline/media/tensor.ts";
import { decodeFrames, probeVideo } from "../../src/pipeline/media/video.ts";
import { ModelRuntime } from "../../src/pipeline/runtime.ts";
import { checkNativeSize } from "../../src/pipeline/work/input-checks.ts";
import { parseConfig } from "../../src/server/config.ts";
import { ffmpegMake, testVideo } from "./media.ts";
import { REPO_ROOT } from "./python.ts";
import {
  auth,
  MODEL,
  makeVideo,
  openTestApp,
  type TestApp,
  tempDir,
  tempFilesUnder,
} from "./server-helpers.ts";

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
    const untiledFrames = videoToFrames(
      tensorOf(dec, "video").data as Float32Array,
      [1, 3, 5, 256, 320],
    );
    const tiledFrames = await decodeInTiles(rt, b, untiled, dims, tiles);
    // Frames, rgb24: the decoded tiles are blended in float and rounded once, like one call.
    let decErr = 0;
    let differing = 0;
    tiledFrames.forEach((frame, i) => {
      const other = untiledFrames[i] as Uint8Array;
      for (let p = 0; p < frame.length; p++) {
        const d = Math.abs((frame[p] as number) - (other[p] as number));
        decErr = Math.max(decErr, d);
        if (d > 0) differing++;
      }
    });
    t.diagnostic(
      `max |tiled - untiled|: latents ${encErr.toExponential(2)} (margin 0: ${bareErr.toExponential(2)}), frames: ${differing} of ${5 * 256 * 320 * 3} bytes differ, by at most ${decErr}`,
    );
    // Every value kept from a tile lies outside the padding's reach (the margin covers the
    // receptive field, tests/python/test_conv_vae.py), so what is left is float rounding: the
    // tiles run streamed in time (encoder_init + encoder_step, equal to one call to 1e-4 in
    // onnx-parity) on other shapes than the whole frame. Measured 1.4e-6 on latents of unit
    // scale, and the decoded frames equal byte for byte; 1e-4 (the streaming parity bound) holds
    // the latents. Without the margin the same seams give 1.3e-2.
    assert.ok(encErr < 1e-4, `latents differ by ${encErr}`);
    // A float difference of 1e-7 can move a value across a rounding boundary: one level, rarely.
    assert.ok(
      decErr <= 1 && differing < 100,
      `frames differ in ${differing} bytes by up to ${decErr}`,
    );
    assert.ok(bareErr > 100 * encErr && bareErr > 1e-3, `margin 0 differs by only ${bareErr}`);
  });

  test("a frame wider than a tile is encoded in tiles; the metadata says the size and tiles", async () => {
    // 400x96: 50x12 latent cells, three tiles of 32 across (the shipped manifest's tiling).
    const path = testVideo(join(work, "wide.mp4"), { size: "400x96", fps: 8, seconds: 2.2 });
    const r = await encodeFile(rt, "small-se", path, {
      mode: "clip",
      dtype: "float32",
      size: "native",
    });
    assert.deepEqual(r.meta.size, { mode: "native", width: 400, height: 96 });
    assert.equal(r.meta.tiles, 3);
    assert.deepEqual(r.meta.latentShape, [1, 16, 5, 12, 50]);
    assert.ok(r.latents.data.every((v) => Number.isFinite(v)));
  });

  test("whole mode at native size takes one tile at most, 422 naming size", () => {
    const b = rt.loaded("small-se");
    assert.throws(
      () => checkNativeSize(b, { width: 1920, height: 1080 }, "whole", undefined),
      (err: Error & { code?: string; status?: number }) =>
        err.code === "too_large" &&
        err.status === 422 &&
        /^size native in whole mode/.test(err.message),
    );
    checkNativeSize(b, { width: 1920, height: 1080 }, "clip", undefined);
    checkNativeSize(b, { width: 256, height: 200 }, "whole", undefined);
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

describe("size through the API (the fixture bundle: no tiling in its manifest, one piece)", () => {
  let t: TestApp;
  const work = tempDir("native-api");
  before(async () => {
    t = await openTestApp({ DIFFUSABLE_MAX_PIXELS: "7000", DIFFUSABLE_DEFAULT_MODEL: MODEL });
  });
  after(() => t.close());

  const post = (path: string, file: string, fields: Record<string, string>) => {
    const form = new FormData();
    for (const [k, v] of Object.entries(fields)) form.append(k, v);
    form.append("files", new Blob([readFileSync(file)]), basename(file));
    return t.app.request(path, {
      method: "POST",
      headers: { ...auth(t.user), prefer: "wait=60" },
      body: form,
    });
  };
  type Job = {
    status: string;
    id: string;
    options: Record<string, unknown>;
    items: { metadata: Record<string, unknown>; urls: Record<string, string> }[];
  };

  test("native encodings keep the whole frame, rounded to the spatial factor; bundle is the crop", async () => {
    const path = makeVideo(join(work, "wide.mp4"), { size: "100x60", seconds: 2 });
    const res = await post("/v1/encodings", path, { size: "native" });
    const job = (await res.json()) as Job;
    assert.equal(job.status, "succeeded", JSON.stringify(job));
    assert.equal(job.options.size, "native");
    const meta = job.items[0]?.metadata as { size: unknown; tiles: number; latentShape: number[] };
    assert.deepEqual(meta.size, { mode: "native", width: 104, height: 64 });
    assert.equal(meta.tiles, 1);
    assert.deepEqual(meta.latentShape.slice(-2), [8, 13]); // aspect 1.625 for the video's 1.667
    const json = await t.app.request(`/v1/encodings/${job.id}/items/0/metadata`, {
      headers: auth(t.user),
    });
    assert.deepEqual(((await json.json()) as { size: unknown }).size, meta.size);
    const plain = (await (await post("/v1/encodings", path, {})).json()) as Job;
    const bundleMeta = plain.items[0]?.metadata as { size: unknown };
    assert.deepEqual(bundleMeta.size, { mode: "bundle", width: 32, height: 32 });
  });

  test("native reconstructions are videos of the rounded size, with it in the metadata", async () => {
    const path = makeVideo(join(work, "tall.mp4"), { size: "52x76", seconds: 2 });
    const job = (await (
      await post("/v1/reconstructions", path, { size: "native", format: "mp4" })
    ).json()) as Job;
    assert.equal(job.status, "succeeded", JSON.stringify(job));
    const meta = job.items[0]?.metadata as { size: unknown; psnr: number[] };
    assert.deepEqual(meta.size, { mode: "native", width: 56, height: 80 });
    assert.ok(meta.psnr.length >= 9);
    const video = await t.app.request(job.items[0]?.urls.video as string, {
      headers: auth(t.user),
    });
    assert.equal(video.status, 200);
    const out = join(work, "out.mp4");
    writeFileSync(out, new Uint8Array(await video.arrayBuffer()));
    const info = await probeVideo(out);
    assert.deepEqual([info.width, info.height], [56, 80]);
  });

  test("a native frame over DIFFUSABLE_MAX_PIXELS is a 422 naming size, before the 202", async () => {
    const path = makeVideo(join(work, "big.mp4"), { size: "128x72", seconds: 2 });
    for (const resource of ["encodings", "reconstructions"]) {
      const res = await post(`/v1/${resource}`, path, { size: "native" });
      const body = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(res.status, 422, JSON.stringify(body));
      assert.equal(body.error.code, "too_large");
      assert.match(
        body.error.message,
        /^files\[0\] "big\.mp4": size native gives the video's 128x72 frame as 128x72 \(9216 pixels\), more than the limit of 7000 \(DIFFUSABLE_MAX_PIXELS\)/,
      );
      assert.doesNotMatch(body.error.message, /\/tmp|\/uploads/);
      const list = (await (
        await t.app.request(`/v1/${resource}`, { headers: auth(t.user) })
      ).json()) as { jobs: Job[] };
      assert.ok(list.jobs.every((j) => j.options.size !== "native" || j.status === "succeeded"));
    }
    assert.deepEqual(tempFilesUnder(t.config.dataDir), []);
    // The same video at the bundle's size is accepted.
    const ok = (await (await post("/v1/encodings", path, { size: "bundle" })).json()) as Job;
    assert.equal(ok.status, "succeeded");
  });

  test("a bad size is a 400 naming the field; DIFFUSABLE_MAX_PIXELS is checked at start", async () => {
    const path = makeVideo(join(work, "small.mp4"), { size: "64x48", seconds: 2 });
    const res = await post("/v1/encodings", path, { size: "huge" });
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(res.status, 400);
    assert.match(body.error.message, /^size must be one of "bundle", "native"/);
    for (const bad of ["abc", "0", "1.5"]) {
      assert.throws(() => parseConfig({ DIFFUSABLE_MAX_PIXELS: bad }), /DIFFUSABLE_MAX_PIXELS/);
    }
    assert.equal(parseConfig({}).maxPixels, 1920 * 1088);
  });
});
