// Encoding: video file -> latents, in clip mode (consecutive clips, the way the model was
// trained) or whole mode (the video causally, chunk by chunk). Frames stream from ffmpeg
// (media/video.ts) and models run in the worker pool (runtime.ts); nothing here holds a whole
// decoded video.

import { basename } from "node:path";
import type { Bundle } from "../bundle.ts";
import type { NpyArray } from "../media/npy-file.ts";
import { concatTime, roundToHalfInPlace, TimeAccumulator } from "../media/tensor.ts";
import { probeVideo } from "../media/video.ts";
import type { TensorValue } from "../onnx/onnx-session.ts";
import { abortError, PipelineError } from "../pipeline-error.ts";
import type { ModelRuntime } from "../runtime.ts";
import { checkFps, groups, modelFrames, tensorOf, tooShort, video } from "./model-io.ts";
import {
  BlendCanvas,
  type FrameDims,
  type FrameSize,
  frameDims,
  type Tile,
  tilesOf,
  tileVideo,
  tilingOf,
} from "./tiling.ts";

export const ENCODE_MODES = ["clip", "whole"] as const;
export type EncodeMode = (typeof ENCODE_MODES)[number];

export interface EncodeOptions {
  mode: EncodeMode;
  /** Frame rate to sample the video at; default: the bundle's. */
  fps?: number;
  dtype: "float32" | "float16";
  signal?: AbortSignal;
  onProgress?: (p: { framesDone: number; framesTotal: number | null }) => void;
  /**
   * Clips per encoder call in clip mode; in whole mode, 4-frame chunks per encoder_step call
   * (default 4). Only speed and memory depend on it, never the latents.
   */
  batch?: number;
  /** Limit for decoding the whole file, model time included (default 1 hour). */
  timeoutMs?: number;
  /** The name recorded as meta.source (default: the input file's base name). */
  sourceName?: string;
  /** bundle (default): the bundle's square crop; native: the video's own frame (tiling.ts). */
  size?: FrameSize;
}

export interface EncodeMeta {
  source: string;
  fps: number;
  /** Video frames that went into the latents (clips x clip frames, or 1+4k in whole mode). */
  frames: number;
  latentShape: number[];
  mode: EncodeMode;
  dtype: string;
  /** The frame the model saw: the size asked for, and its width and height in pixels. */
  size: { mode: FrameSize; width: number; height: number };
  /** Spatial tiles per frame (1: the frame in one piece). */
  tiles: number;
  bundle: string;
  bundleSha256: string;
}

export interface EncodeResult {
  /** clip mode (N, C, 1+k, h, w); whole mode (1, C, t, h, w). */
  latents: NpyArray;
  meta: EncodeMeta;
}

/** Encodes a video file to latents with one of the runtime's bundles. */
export async function encodeFile(
  rt: ModelRuntime,
  bundleName: string,
  inputPath: string,
  opts: EncodeOptions,
): Promise<EncodeResult> {
  const b = rt.loaded(bundleName);
  const m = b.manifest;
  const fps = opts.fps ?? m.fps;
  checkFps(fps);
  const batch = opts.batch ?? 4;
  if (!(Number.isInteger(batch) && batch >= 1 && batch <= 256)) {
    throw new PipelineError("bad_option", `batch must be an integer in 1..256, got ${batch}`, 400);
  }
  const info = await probeVideo(inputPath);
  const framesTotal =
    info.durationS !== null ? Math.max(1, Math.floor(info.durationS * fps)) : null;
  const size = opts.size ?? "bundle";
  const dims = frameDims(m, size, info.width, info.height);
  const tiles = tilesOf(
    dims.height / m.spatial_factor,
    dims.width / m.spatial_factor,
    size === "native" ? tilingOf(m) : null,
    m.spatial_factor,
  );
  if (opts.mode === "whole" && tiles.length > 1) {
    throw new PipelineError(
      "too_large",
      `size native with mode whole needs frames of at most ${tilingOf(m)?.tile} latent cells a side (one tile); this video's ${dims.width}x${dims.height} frame takes ${tiles.length} tiles: use mode clip.`,
      422,
    );
  }
  const input = modelFrames(inputPath, {
    fps,
    side: m.resolution,
    size,
    dims,
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  const progress = (framesDone: number) => opts.onProgress?.({ framesDone, framesTotal });
  const { latent, shape, used } =
    opts.mode === "whole"
      ? await encodeWhole(rt, b, dims, input.frames, batch, progress, framesTotal, opts.signal)
      : tiles.length > 1
        ? await encodeTiledClips(rt, b, dims, tiles, input.frames, progress, opts.signal)
        : await encodeClips(rt, b, dims, input.frames, batch, progress, opts.signal);
  if (used === 0) {
    const need = opts.mode === "whole" ? 1 + m.temporal_factor : m.frames.default;
    throw tooShort(input.read(), fps, need, opts.mode);
  }
  const latents: NpyArray =
    opts.dtype === "float16"
      ? { dtype: "float16", shape, data: roundToHalfInPlace(latent) }
      : { dtype: "float32", shape, data: latent };
  return {
    latents,
    meta: {
      source: opts.sourceName ?? basename(inputPath),
      fps,
      frames: used,
      latentShape: shape,
      mode: opts.mode,
      dtype: opts.dtype,
      size: { mode: size, ...dims },
      tiles: tiles.length,
      bundle: b.name,
      bundleSha256: b.sha256,
    },
  };
}

interface Encoded {
  latent: Float32Array;
  shape: number[];
  /** Video frames encoded (0: the video was too short). */
  used: number;
}

/**
 * Clip mode: consecutive clips of the manifest's default frame count, `batch` clips per encoder
 * call, as many calls in flight as the pool has workers. Frames past the last whole clip are
 * dropped.
 */
async function encodeClips(
  rt: ModelRuntime,
  b: Bundle,
  dims: FrameDims,
  frames: AsyncIterable<Uint8Array>,
  batch: number,
  progress: (framesDone: number) => void,
  signal?: AbortSignal,
): Promise<Encoded> {
  const m = b.manifest;
  const f = m.frames.default;
  const { height: fh, width: fw } = dims;
  const inFlight: Promise<Float32Array>[] = [];
  const done: Float32Array[] = [];
  let pending: Uint8Array[][] = [];
  let clips = 0;
  let latentDims: number[] = [];

  const submit = async () => {
    const n = pending.length;
    const data = new Float32Array(n * 3 * f * fh * fw);
    pending.forEach((clip, i) => {
      data.set(tileVideo(clip, fw, 0, 0, fh, fw), i * 3 * f * fh * fw);
    });
    pending = [];
    const p = rt
      .run(b, "encoder", { video: video(data, [n, 3, f, fh, fw]) }, signal)
      .then((out) => {
        const latent = tensorOf(out, "latent");
        latentDims = [...latent.dims];
        return latent.data as Float32Array;
      });
    p.catch(() => {}); // observed below, in order
    inFlight.push(p);
    // Bounded memory: at most one batch per worker waits for the model.
    while (inFlight.length >= rt.pool.size)
      done.push(await (inFlight.shift() as Promise<Float32Array>));
  };

  for await (const clip of groups(frames, f)) {
    if (signal?.aborted) throw abortError(signal);
    pending.push(clip);
    clips++;
    if (pending.length === batch) await submit();
    progress(clips * f);
  }
  if (pending.length > 0) await submit();
  for (const p of inFlight) done.push(await p);
  if (clips === 0) return { latent: new Float32Array(0), shape: [], used: 0 };
  const [, c = 0, t = 0, h = 0, w = 0] = latentDims;
  const latent = new Float32Array(clips * c * t * h * w);
  let offset = 0;
  for (const part of done) {
    latent.set(part, offset);
    offset += part.length;
  }
  return { latent, shape: [clips, c, t, h, w], used: clips * f };
}

/**
 * Whole mode: the video causally, chunk by chunk (docs/bundle.md, "Streaming"): encoder_init on
 * frame 0, then encoder_step on the following frames, chunk_frames x stepChunks at a time, feeding
 * each call's cache_out_i back as cache_i. Only one step's frames and the caches are held; a
 * trailing partial chunk is dropped (the video is cut to 1+4k frames).
 */
async function encodeWhole(
  rt: ModelRuntime,
  b: Bundle,
  dims: FrameDims,
  frames: AsyncIterable<Uint8Array>,
  stepChunks: number,
  progress: (framesDone: number) => void,
  framesTotal: number | null,
  signal?: AbortSignal,
): Promise<Encoded> {
  const m = b.manifest;
  const { height: fh, width: fw } = dims;
  const stream = m.onnx.encoder_stream;
  const c = m.latent_channels;
  const sf = m.spatial_factor;
  // One buffer for the whole video's latents, sized from the probe's frame count (a minute at
  // fps 240 is 3600 latent frames): each step's latent is copied in and freed at once.
  const latents = new TimeAccumulator(
    c,
    (fh / sf) * (fw / sf),
    1 + Math.floor(Math.max(0, (framesTotal ?? 1) - 1) / m.temporal_factor),
  );
  let caches: Record<string, TensorValue> = {};
  let used = 0;
  let latentHW: [number, number] = [0, 0];

  const step = async (chunk: Uint8Array[]) => {
    const data = tileVideo(chunk, fw, 0, 0, fh, fw);
    const role = used === 0 ? "encoderInit" : "encoderStep";
    const out = await rt.run(
      b,
      role,
      { video: video(data, [1, 3, chunk.length, fh, fw]), ...caches },
      signal,
    );
    const latent = tensorOf(out, "latent");
    latentHW = [latent.dims[3] ?? 0, latent.dims[4] ?? 0];
    latents.push(latent.data as Float32Array);
    caches = {};
    stream.caches.forEach((cache, i) => {
      caches[cache.name] = tensorOf(out, `cache_out_${i}`);
    });
    used += chunk.length;
    progress(used);
  };

  // Each step takes `stepChunks` chunks at once (fewer, larger calls); the tail takes as many
  // whole chunks as are left. The latents are the same either way (any multiple of chunk_frames).
  const full = stream.chunk_frames * stepChunks;
  let chunk: Uint8Array[] = [];
  for await (const frame of frames) {
    if (signal?.aborted) throw abortError(signal);
    chunk.push(frame);
    if (used === 0 || chunk.length === full) {
      await step(chunk);
      chunk = [];
    }
  }
  const tail = chunk.length - (chunk.length % stream.chunk_frames);
  if (used > 0 && tail > 0) await step(chunk.slice(0, tail));
  if (used < 1 + m.temporal_factor) return { latent: new Float32Array(0), shape: [], used: 0 };
  const [h, w] = latentHW;
  return { latent: latents.finish(), shape: [1, c, latents.frames, h, w], used };
}

/**
 * Clip mode on frames larger than one tile (tiling.ts): each clip is encoded tile by tile, each
 * tile streamed in time (encoder_init on frame 0, then encoder_step on chunk_frames at a time,
 * which gives the latents of one encoder call: docs/bundle.md "Streaming"), so that a model call
 * holds chunk_frames frames of one tile whatever the frame size; the tiles' latents are blended.
 * One call in flight at a time.
 */
async function encodeTiledClips(
  rt: ModelRuntime,
  b: Bundle,
  dims: FrameDims,
  tiles: Tile[],
  frames: AsyncIterable<Uint8Array>,
  progress: (framesDone: number) => void,
  signal?: AbortSignal,
): Promise<Encoded> {
  const m = b.manifest;
  const f = m.frames.default;
  const sf = m.spatial_factor;
  const c = m.latent_channels;
  const t = 1 + (f - 1) / m.temporal_factor;
  const [h, w] = [dims.height / sf, dims.width / sf];
  const parts: Float32Array[] = [];
  let clips = 0;
  for await (const clip of groups(frames, f)) {
    if (signal?.aborted) throw abortError(signal);
    parts.push(await encodeClipInTiles(rt, b, clip, dims, tiles, signal));
    clips++;
    progress(clips * f);
  }
  if (clips === 0) return { latent: new Float32Array(0), shape: [], used: 0 };
  const latent = new Float32Array(clips * c * t * h * w);
  parts.forEach((part, i) => {
    latent.set(part, i * part.length);
  });
  return { latent, shape: [clips, c, t, h, w], used: clips * f };
}

/** One clip of frames larger than a tile, encoded tile by tile and blended: (C, t, h, w). */
export async function encodeClipInTiles(
  rt: ModelRuntime,
  b: Bundle,
  clip: readonly Uint8Array[],
  dims: FrameDims,
  tiles: Tile[],
  signal?: AbortSignal,
): Promise<Float32Array> {
  const m = b.manifest;
  const sf = m.spatial_factor;
  const t = 1 + (clip.length - 1) / m.temporal_factor;
  const canvas = new BlendCanvas(m.latent_channels, t, dims.height / sf, dims.width / sf);
  for (const tile of tiles) {
    const latent = await encodeTileClip(rt, b, clip, dims.width, tile, signal);
    canvas.add(latent, tile.y, tile.x, cellWeights(tile.wy, sf), cellWeights(tile.wx, sf));
  }
  return canvas.finish();
}

/** Pixel weights (scale sf) back to one weight per cell: the cell's first pixel's weight would
 * do for a hard seam, the mean keeps the ramp's shape at cell resolution. */
function cellWeights(pixels: Float32Array, sf: number): Float32Array {
  const out = new Float32Array(pixels.length / sf);
  for (let i = 0; i < out.length; i++) {
    let sum = 0;
    for (let k = 0; k < sf; k++) sum += pixels[i * sf + k] as number;
    out[i] = sum / sf;
  }
  return out;
}

/** One tile of one clip, streamed in time: (1, C, t, tile.h, tile.w). */
async function encodeTileClip(
  rt: ModelRuntime,
  b: Bundle,
  clip: readonly Uint8Array[],
  width: number,
  tile: Tile,
  signal?: AbortSignal,
): Promise<Float32Array> {
  const m = b.manifest;
  const sf = m.spatial_factor;
  const stream = m.onnx.encoder_stream;
  const [y0, x0, th, tw] = [tile.y * sf, tile.x * sf, tile.h * sf, tile.w * sf];
  const parts: Float32Array[] = [];
  let caches: Record<string, TensorValue> = {};
  for (let start = 0; start < clip.length; ) {
    const n = start === 0 ? 1 : stream.chunk_frames;
    const chunk = clip.slice(start, start + n);
    const data = tileVideo(chunk, width, y0, x0, th, tw);
    const out = await rt.run(
      b,
      start === 0 ? "encoderInit" : "encoderStep",
      { video: video(data, [1, 3, n, th, tw]), ...caches },
      signal,
    );
    parts.push(tensorOf(out, "latent").data as Float32Array);
    caches = {};
    stream.caches.forEach((cache, i) => {
      caches[cache.name] = tensorOf(out, `cache_out_${i}`);
    });
    start += n;
  }
  return concatTime(parts, m.latent_channels, tile.h * tile.w);
}
