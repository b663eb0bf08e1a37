// Reconstruction: video -> latents -> video in clip mode, with PSNR and SSIM of every frame; at
// the bundle's square crop or at the video's own size (tiled when larger than a tile: tiling.ts).

import type { Bundle } from "../bundle.ts";
import type { VideoFormat } from "../media/output-formats.ts";
import { psnr, ssim, videoToFrames } from "../media/tensor.ts";
import { decodeFrames, encodeFrames, probeVideo } from "../media/video.ts";
import type { ModelRuntime } from "../runtime.ts";
import { encodeClipInTiles } from "./encode.ts";
import { checkFps, DEFAULT_TIMEOUT_MS, groups, tensorOf, tooShort, video } from "./model-io.ts";
import {
  BlendCanvas,
  cropCells,
  type FrameDims,
  type FrameSize,
  frameDims,
  type Tile,
  tilesOf,
  tileVideo,
  tilingOf,
} from "./tiling.ts";

/**
 * video -> latents -> video in clip mode (the way the model was trained), writing the
 * reconstruction to outPath and returning PSNR and SSIM of every frame against the decoded input
 * (both at the size used, on the [0, 1] scale).
 */
export async function reconstructFile(
  rt: ModelRuntime,
  bundleName: string,
  inputPath: string,
  opts: {
    format: VideoFormat;
    outPath: string;
    fps?: number;
    signal?: AbortSignal;
    timeoutMs?: number;
    /** bundle (default): the square crop; native: the video's own frame. */
    size?: FrameSize;
  },
): Promise<{
  frames: number;
  psnr: number[];
  ssim: number[];
  size: { mode: FrameSize; width: number; height: number };
  tiles: number;
}> {
  const b = rt.loaded(bundleName);
  const m = b.manifest;
  const fps = opts.fps ?? m.fps;
  checkFps(fps);
  const size = opts.size ?? "bundle";
  const info = await probeVideo(inputPath);
  const dims = frameDims(m, size, info.width, info.height);
  const { width: fw, height: fh } = dims;
  const sf = m.spatial_factor;
  const tiles = tilesOf(fh / sf, fw / sf, size === "native" ? tilingOf(m) : null, sf);
  const f = m.frames.default;
  const source = decodeFrames(inputPath, {
    fps,
    size: m.resolution,
    ...(size === "native" ? { frame: dims } : {}),
    timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  let framesRead = 0; // the real count, for the too_short message
  async function* counted() {
    for await (const frame of source) {
      framesRead++;
      yield frame;
    }
  }
  const psnrs: number[] = [];
  const ssims: number[] = [];
  async function* reconstructed() {
    for await (const clip of groups(counted(), f)) {
      let out: { data: Float32Array; dims: number[] };
      if (tiles.length > 1) {
        const latent = await encodeClipInTiles(rt, b, clip, dims, tiles, opts.signal);
        out = {
          data: await decodeInTiles(rt, b, latent, dims, tiles, opts.signal),
          dims: [1, 3, f, fh, fw],
        };
      } else {
        const data = tileVideo(clip, fw, 0, 0, fh, fw);
        const enc = await rt.run(
          b,
          "encoder",
          { video: video(data, [1, 3, f, fh, fw]) },
          opts.signal,
        );
        const dec = await rt.run(b, "decoder", { latent: tensorOf(enc, "latent") }, opts.signal);
        const v = tensorOf(dec, "video");
        out = { data: v.data as Float32Array, dims: [...v.dims] };
      }
      const frames = videoToFrames(out.data, out.dims);
      frames.forEach((frame, i) => {
        const original = clip[i] as Uint8Array;
        psnrs.push(psnr(original, frame));
        ssims.push(ssim(original, frame, fh, fw));
      });
      yield* frames;
    }
    if (psnrs.length === 0) throw tooShort(framesRead, fps, f, "clip");
  }
  const { frames } = await encodeFrames(reconstructed(), {
    width: fw,
    height: fh,
    fps,
    format: opts.format,
    outPath: opts.outPath,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  return { frames, psnr: psnrs, ssim: ssims, size: { mode: size, ...dims }, tiles: tiles.length };
}

/**
 * Latents (C, t, h, w) of a frame larger than a tile, decoded tile by tile (each tile's latent
 * cells, one decoder call) and blended in pixels: (3, 1 + tf (t - 1), H, W) in [-1, 1].
 */
export async function decodeInTiles(
  rt: ModelRuntime,
  b: Bundle,
  latent: Float32Array,
  dims: FrameDims,
  tiles: Tile[],
  signal?: AbortSignal,
): Promise<Float32Array> {
  const m = b.manifest;
  const sf = m.spatial_factor;
  const c = m.latent_channels;
  const [h, w] = [dims.height / sf, dims.width / sf];
  const t = latent.length / (c * h * w);
  const frames = 1 + m.temporal_factor * (t - 1);
  const canvas = new BlendCanvas(3, frames, dims.height, dims.width);
  for (const tile of tiles) {
    const cells = cropCells(latent, c * t, h, w, tile.y, tile.x, tile.h, tile.w);
    const out = await rt.run(
      b,
      "decoder",
      { latent: video(cells, [1, c, t, tile.h, tile.w]) },
      signal,
    );
    canvas.add(
      tensorOf(out, "video").data as Float32Array,
      tile.y * sf,
      tile.x * sf,
      tile.wy,
      tile.wx,
    );
  }
  return canvas.finish();
}
