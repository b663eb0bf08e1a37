// What can be checked about an input before a job is accepted (before the 202): a video's
// duration against DIFFUSABLE_MAX_SECONDS and its frame count at the requested fps against the
// mode and the bundle (a still image, whatever its name, is refused as one); latents' dtype, rank, channels and size against the bundle, their length
// against the limit, and every value finite. Each failure is a PipelineError whose message is a
// sentence; the upload handler prefixes it with the file.

import { readFile } from "node:fs/promises";
import { checkFps, tooShort } from "../autoencoder/model-io.ts";
import { type FrameSize, nativeDims, tilesOf, tilingOf } from "../autoencoder/tiling.ts";
import { type Bundle, minFrames } from "../bundle.ts";
import { NpyDtypeError, parseNpy } from "../media/npy-file.ts";
import { countVideoFrames, probeVideo, type VideoInfo } from "../media/video.ts";
import { PipelineError } from "../pipeline-error.ts";

/** The frames that sampling the video at `fps` gives, estimated from its header (null: unknown). */
export function estimateFrames(info: VideoInfo, fps: number): number | null {
  if (info.frames !== null && Math.abs(info.fps - fps) < 1e-6) return info.frames;
  return info.durationS !== null ? Math.round(info.durationS * fps) : null;
}

/** Frames a mode needs at least: one clip (clip mode, reconstructions), 1 + temporal_factor (whole). */
export function framesNeeded(bundle: Bundle, mode: "clip" | "whole"): number {
  const m = bundle.manifest;
  return mode === "whole" ? 1 + m.temporal_factor : m.frames.default;
}

/** Checks a video upload for an encoding ("clip" or "whole") or a reconstruction ("clip"). */
export async function checkVideoInput(
  bundle: Bundle,
  path: string,
  opts: {
    mode: "clip" | "whole";
    fps?: number | undefined;
    maxSeconds: number;
    /** native: the frame must fit maxPixels (and one tile in whole mode). */
    size?: FrameSize | undefined;
    maxPixels?: number | undefined;
  },
): Promise<VideoInfo> {
  const info = await probeVideo(path);
  if (opts.size === "native") checkNativeSize(bundle, info, opts.mode, opts.maxPixels);
  const fps = opts.fps ?? bundle.manifest.fps;
  checkFps(fps);
  if (info.durationS !== null && info.durationS > opts.maxSeconds) {
    throw new PipelineError(
      "too_long",
      `the video lasts ${info.durationS.toFixed(1)} s, longer than the limit of ${opts.maxSeconds} s (DIFFUSABLE_MAX_SECONDS).`,
      422,
    );
  }
  const need = framesNeeded(bundle, opts.mode);
  if (info.stillImage) {
    throw new PipelineError(
      "not_a_video",
      `the file is a still image (${info.codec}), not a video; ${opts.mode} mode needs at least ${need} frames.`,
      422,
    );
  }
  // Neither a duration nor a frame count in the header: count the frames (demuxing only).
  const estimate =
    estimateFrames(info, fps) ??
    Math.round(((await countVideoFrames(path)) * fps) / (info.fps > 0 ? info.fps : fps));
  if (estimate < need) throw tooShort(estimate, fps, need, opts.mode);
  return info;
}

/**
 * size=native: the rounded frame's pixels against DIFFUSABLE_MAX_PIXELS, and in whole mode one
 * tile at most (whole mode streams the video through one set of caches: autoencoder/encode.ts).
 */
export function checkNativeSize(
  bundle: Bundle,
  info: Pick<VideoInfo, "width" | "height">,
  mode: "clip" | "whole",
  maxPixels: number | undefined,
): void {
  const m = bundle.manifest;
  const { width, height } = nativeDims(m, info.width, info.height);
  const pixels = width * height;
  const own = `the video's ${info.width}x${info.height} frame`;
  if (maxPixels !== undefined && pixels > maxPixels) {
    throw new PipelineError(
      "too_large",
      `size native gives ${own} as ${width}x${height} (${pixels} pixels), more than the limit of ${maxPixels} (DIFFUSABLE_MAX_PIXELS); use size bundle or a smaller video.`,
      422,
    );
  }
  const tiling = tilingOf(m);
  const sf = m.spatial_factor;
  if (mode === "whole" && tiles(height / sf, width / sf, tiling) > 1) {
    throw new PipelineError(
      "too_large",
      `size native in whole mode takes frames of one tile (${tiling?.tile} latent cells, ${(tiling?.tile ?? 0) * sf} pixels a side, manifest tiling); ${own} is ${width}x${height}: use mode clip, or size bundle.`,
      422,
    );
  }
}

const tiles = (h: number, w: number, t: ReturnType<typeof tilingOf>) => tilesOf(h, w, t, 1).length;

/** Checks a latents upload for a decoding with this bundle. */
export async function checkLatentsInput(
  bundle: Bundle,
  path: string,
  opts: { maxSeconds: number },
): Promise<void> {
  const m = bundle.manifest;
  const bad = (message: string) => new PipelineError("bad_latents", message, 400);
  let array: ReturnType<typeof parseNpy>;
  try {
    array = parseNpy(await readFile(path));
  } catch (err) {
    // A dtype this reader cannot read is refused by the same rule as one it can (uint8, int64).
    if (err instanceof NpyDtypeError) {
      throw bad(`the latents are ${err.dtype}; they must be float32 or float16.`);
    }
    throw bad(`the file is not a readable .npy array (${(err as Error).message}).`);
  }
  const shape = array.shape;
  const shown = `(${shape.join(", ")})`;
  if (array.dtype !== "float32" && array.dtype !== "float16") {
    throw bad(`the latents are ${array.dtype}; they must be float32 or float16.`);
  }
  if (shape.length !== 5 || shape[0] !== 1) {
    throw bad(`the latents have shape ${shown}; they must have shape (1, C, t, h, w).`);
  }
  const [, c = 0, t = 0, h = 0, w = 0] = shape;
  if (c !== m.latent_channels) {
    throw bad(
      `the latents have ${c} channels (shape ${shown}); model ${bundle.name} has ${m.latent_channels}.`,
    );
  }
  const side = m.resolution / m.spatial_factor;
  if (h !== side || w !== side) {
    throw bad(
      `the latents are ${h}x${w} (shape ${shown}); model ${bundle.name} decodes ${side}x${side} latents.`,
    );
  }
  if (t < 1) throw bad(`the latents have no frames (shape ${shown}).`);
  const frames = 1 + m.temporal_factor * (t - 1);
  const least = minFrames(m);
  if (frames < least) {
    throw bad(
      `the latents have ${t} frame${t === 1 ? "" : "s"} (shape ${shown}), which decode to ${frames} video frame${frames === 1 ? "" : "s"}; model ${bundle.name} decodes at least ${least} (manifest frames.min).`,
    );
  }
  if (frames / m.fps > opts.maxSeconds) {
    throw new PipelineError(
      "too_long",
      `the latents decode to ${frames} frames (${(frames / m.fps).toFixed(1)} s at ${m.fps} fps), longer than the limit of ${opts.maxSeconds} s (DIFFUSABLE_MAX_SECONDS).`,
      422,
    );
  }
  const data = array.data as Float32Array;
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i] as number)) {
      throw bad(
        `the latents hold a non-finite value (${data[i]}) at flat index ${i}; every value must be finite.`,
      );
    }
  }
}
