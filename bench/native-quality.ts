// Reconstruction quality at the video's own size against the bundle's 64x64 crop, on a real
// camera video (never part of any dataset here): mean PSNR of the reconstruction and the 8-pixel
// grid ratio (diffusable.evaluation.metrics.grid_steps: mean |step| across 8-pixel block edges over mean
// |step| inside blocks) of the reconstruction beside the input's own, for the first clip(s) of
// the video at size=bundle, at size=native and at size=native on a copy scaled to --small wide.
// Measured, never asserted.
//
//   npx tsx bench/native-quality.ts [--video PATH] [--model small-se] [--clips 1] [--small 320]

import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { encodeClipInTiles } from "../src/pipeline/autoencoder/encode.ts";
import { groups, tensorOf } from "../src/pipeline/autoencoder/model-io.ts";
import { decodeInTiles } from "../src/pipeline/autoencoder/reconstruct.ts";
import {
  type FrameSize,
  frameDims,
  tilesOf,
  tileVideo,
  tilingOf,
} from "../src/pipeline/autoencoder/tiling.ts";
import { psnr, videoToFrames } from "../src/pipeline/media/tensor.ts";
import { decodeFrames, probeVideo } from "../src/pipeline/media/video.ts";
import { ModelRuntime } from "../src/pipeline/runtime.ts";

const ROOT = resolve(import.meta.dirname, "..");
const COCKATOO = "/usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4";
const { values } = parseArgs({
  options: {
    video: { type: "string", default: COCKATOO },
    model: { type: "string", default: "small-se" },
    clips: { type: "string", default: "1" },
    small: { type: "string", default: "320" },
  },
});
if (!existsSync(values.video)) throw new Error(`no video at ${values.video} (give --video PATH)`);
const work = mkdtempSync(join(tmpdir(), "bench-native-quality-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));

/** Sums of |step| across 8-pixel block edges and inside blocks of an rgb24 frame. */
function gridSums(frame: Uint8Array, h: number, w: number, sums: number[]): void {
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < 3; c++) {
        const v = frame[(y * w + x) * 3 + c] as number;
        if (x + 1 < w) {
          const d = Math.abs((frame[(y * w + x + 1) * 3 + c] as number) - v);
          const k = (x + 1) % 8 === 0 ? 0 : 2;
          sums[k] = (sums[k] as number) + d;
          sums[k + 1] = (sums[k + 1] as number) + 1;
        }
        if (y + 1 < h) {
          const d = Math.abs((frame[((y + 1) * w + x) * 3 + c] as number) - v);
          const k = (y + 1) % 8 === 0 ? 0 : 2;
          sums[k] = (sums[k] as number) + d;
          sums[k + 1] = (sums[k + 1] as number) + 1;
        }
      }
    }
  }
}
const ratio = (s: number[]) =>
  (s[0] as number) / (s[1] as number) / Math.max((s[2] as number) / (s[3] as number), 1e-12);

const rt = await ModelRuntime.open({ modelsDir: join(ROOT, "models"), threads: 1 });
const b = rt.loaded(values.model);
const m = b.manifest;

async function measure(path: string, size: FrameSize) {
  const info = await probeVideo(path);
  const dims = frameDims(m, size, info.width, info.height);
  const sf = m.spatial_factor;
  const tiles = tilesOf(
    dims.height / sf,
    dims.width / sf,
    size === "native" ? tilingOf(m) : null,
    sf,
  );
  const frames = decodeFrames(path, {
    fps: m.fps,
    size: m.resolution,
    ...(size === "native" ? { frame: dims } : {}),
    timeoutMs: 3_600_000,
  });
  const psnrs: number[] = [];
  const inSums = [0, 0, 0, 0];
  const outSums = [0, 0, 0, 0];
  const started = performance.now();
  let clips = 0;
  for await (const clip of groups(frames, m.frames.default)) {
    const f = clip.length;
    let out: Uint8Array[];
    if (tiles.length > 1) {
      const latent = await encodeClipInTiles(rt, b, clip, dims, tiles);
      out = await decodeInTiles(rt, b, latent, dims, tiles);
    } else {
      const data = tileVideo(clip, dims.width, 0, 0, dims.height, dims.width);
      const dimsV = [1, 3, f, dims.height, dims.width];
      const enc = await rt.run(b, "encoder", { video: { dtype: "float32", dims: dimsV, data } });
      const dec = await rt.run(b, "decoder", { latent: tensorOf(enc, "latent") });
      out = videoToFrames(tensorOf(dec, "video").data as Float32Array, dimsV);
    }
    clip.forEach((frame, i) => {
      psnrs.push(psnr(frame, out[i] as Uint8Array));
      gridSums(frame, dims.height, dims.width, inSums);
      gridSums(out[i] as Uint8Array, dims.height, dims.width, outSums);
    });
    if (++clips >= Number(values.clips)) break;
  }
  const mean = psnrs.reduce((a, v) => a + v, 0) / psnrs.length;
  return {
    frame: `${dims.width}x${dims.height}`,
    tiles: tiles.length,
    psnr: mean,
    grid: ratio(outSums),
    gridInput: ratio(inSums),
    seconds: (performance.now() - started) / 1000,
  };
}

const small = join(work, "small.mp4");
const scaled = spawnSync(
  "ffmpeg",
  [
    "-v",
    "error",
    "-y",
    "-i",
    values.video,
    "-vf",
    `scale=${values.small}:-2`,
    "-c:v",
    "libx264",
  ].concat(["-qp", "0", small]),
  { encoding: "utf8" },
);
if (scaled.status !== 0) throw new Error(`ffmpeg failed: ${scaled.stderr}`);

const info = await probeVideo(values.video);
console.log(
  `${values.video} (${info.width}x${info.height}), model ${values.model}, first ${values.clips} clip(s) of ${m.frames.default} frames at ${m.fps} fps`,
);
console.log("size                  frame       tiles  PSNR dB  grid ratio (input)  seconds");
for (const [name, path, size] of [
  ["bundle (64x64 crop)", values.video, "bundle"],
  [`native, ${values.small} wide`, small, "native"],
  ["native", values.video, "native"],
] as const) {
  const r = await measure(path, size);
  console.log(
    `${name.padEnd(21)} ${r.frame.padEnd(11)} ${String(r.tiles).padStart(5)}  ${r.psnr.toFixed(2).padStart(7)}  ${r.grid.toFixed(3)} (${r.gridInput.toFixed(3)})       ${r.seconds.toFixed(1).padStart(7)}`,
  );
}
await rt.close();
