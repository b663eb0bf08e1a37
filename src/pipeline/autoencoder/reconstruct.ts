// Reconstruction: video -> latents -> video in clip mode, with PSNR and SSIM of every frame; at
// the bundle's square crop or at the video's own size (tiled when larger than a tile: tiling.ts).

import type { Bundle } from "../bundle.ts";
import type { VideoFormat } from "../media/output-formats.ts";
import { psnr, ssim, videoToFrames } from "../media/tensor.ts";
import { encodeFrames, probeVideo } from "../media/video.ts";
import type { ModelRuntime } from "../runtime.ts";
import { encodeClipInTiles } from "./encode.ts";
import { checkFps, groups, modelFrames, tensorOf, tooShort, video } from "./model-io.ts";
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
  const input = modelFrames(inputPath, {
    fps,
    side: m.resolution,
    size,
    dims,
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  const psnrs: number[] = [];
  const ssims: number[] = [];
  async function* reconstructed() {
    for await (const clip of groups(input.frames, f)) {
      let frames: Uint8Array[];
      if (tiles.length > 1) {
        const latent = await encodeClipInTiles(rt, b, clip, dims, tiles, opts.signal);
        frames = await decodeInTiles(rt, b, latent, dims, tiles, opts.signal);
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
        frames = videoToFrames(v.data as Float32Array, v.dims);
      }
      frames.forEach((frame, i) => {
        const original = clip[i] as Uint8Array;
        psnrs.push(psnr(original, frame));
        ssims.push(ssim(original, frame, fh, fw));
      });
      yield* frames;
    }
    if (psnrs.length === 0) throw tooShort(input.read(), fps, f, "clip");
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
 * cells, one decoder call) and blended in pixels: rgb24 frames (as tensor.ts videoToFrames makes
 * them). The tiles come row by row; the float canvas is a band of one tile's height that slides
 * down the frame, handing out the rows no later tile touches, so it never holds the whole clip.
 */
export async function decodeInTiles(
  rt: ModelRuntime,
  b: Bundle,
  latent: Float32Array,
  dims: FrameDims,
  tiles: Tile[],
  signal?: AbortSignal,
): Promise<Uint8Array[]> {
  const m = b.manifest;
  const sf = m.spatial_factor;
  const c = m.latent_channels;
  const { width: W, height: H } = dims;
  const [h, w] = [H / sf, W / sf];
  const t = latent.length / (c * h * w);
  const n = 1 + m.temporal_factor * (t - 1);
  const frames = Array.from({ length: n }, () => new Uint8Array(H * W * 3));
  const bandRows = Math.min(...tiles.map((tile) => tile.h)) * sf;
  const canvas = new BlendCanvas(3, n, bandRows, W);
  let top = 0; // the frame row of the band's first row
  const flush = (until: number) => {
    canvas.takeRows(until - top, (ct, y, values) => {
      const [ch, f] = [Math.floor(ct / n), ct % n];
      const frame = frames[f] as Uint8Array;
      const at = (top + y) * W * 3 + ch;
      for (let x = 0; x < W; x++) {
        const v = Math.round(((values[x] as number) + 1) * 127.5);
        frame[at + 3 * x] = Math.min(255, Math.max(0, v));
      }
    });
    top = until;
  };
  for (const [i, tile] of tiles.entries()) {
    // A new row of tiles: the rows above it are final.
    if (tile.y * sf > top) flush(tile.y * sf);
    const cells = cropCells(latent, c * t, h, w, tile.y, tile.x, tile.h, tile.w);
    const out = await rt.run(
      b,
      "decoder",
      { latent: video(cells, [1, c, t, tile.h, tile.w]) },
      signal,
    );
    canvas.add(
      tensorOf(out, "video").data as Float32Array,
      tile.y * sf - top,
      tile.x * sf,
      tile.wy,
      tile.wx,
    );
    if (i === tiles.length - 1) flush(H);
  }
  return frames;
}
