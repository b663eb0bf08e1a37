// The autoencoder path: video file -> latents (clip or whole mode), latents -> video file, and
// video -> latents -> video with per-frame PSNR/SSIM. Frames stream from ffmpeg (video.ts) and
// models run in the worker pool (runtime.ts); nothing here holds a whole decoded video.

import { basename } from "node:path";
import type { Bundle } from "./bundle.ts";
import { abortError, PipelineError } from "./errors.ts";
import type { TensorValue } from "./model.ts";
import type { NpyArray } from "./npy.ts";
import type { ModelRuntime } from "./runtime.ts";
import { concatTime, psnr, roundToHalf, ssim, videoToFrames, writeFrames } from "./tensor.ts";
import { decodeFrames, encodeFrames, probeVideo, type VideoFormat } from "./video.ts";

export { PipelineError } from "./errors.ts";
export type { VideoFormat } from "./video.ts";

export type EncodeMode = "clip" | "whole";

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
}

export interface EncodeMeta {
  source: string;
  fps: number;
  /** Video frames that went into the latents (clips x clip frames, or 1+4k in whole mode). */
  frames: number;
  latentShape: number[];
  mode: EncodeMode;
  dtype: string;
  bundle: string;
  bundleSha256: string;
}

export interface EncodeResult {
  /** clip mode (N, C, 1+k, h, w); whole mode (1, C, t, h, w). */
  latents: NpyArray;
  meta: EncodeMeta;
}

const DEFAULT_TIMEOUT_MS = 3_600_000;

function checkFps(fps: number): void {
  if (!(Number.isFinite(fps) && fps > 0 && fps <= 240)) {
    throw new PipelineError("bad_option", `fps must be in (0, 240], got ${fps}`, 400);
  }
}

function video(data: Float32Array, dims: number[]): TensorValue {
  return { dtype: "float32", dims, data };
}

function tensorOf(outputs: Record<string, TensorValue>, name: string): TensorValue {
  const t = outputs[name];
  if (t === undefined) {
    throw new PipelineError("model_failed", `the model returned no "${name}" output`, 500);
  }
  return t;
}

function tooShort(frames: number, fps: number, need: number, mode: EncodeMode): PipelineError {
  return new PipelineError(
    "too_short",
    `the video gives ${frames} frames at ${fps} fps; ${mode} mode needs at least ${need}`,
    422,
  );
}

/** Estimated frame count at this fps, for progress (null when the header has no duration). */
async function estimateFrames(path: string, fps: number): Promise<number | null> {
  const info = await probeVideo(path);
  return info.durationS !== null ? Math.max(1, Math.floor(info.durationS * fps)) : null;
}

/** Groups a frame stream into lists of n frames; a trailing partial group is dropped. */
async function* groups<T>(items: AsyncIterable<T>, n: number): AsyncGenerator<T[]> {
  let group: T[] = [];
  for await (const item of items) {
    group.push(item);
    if (group.length === n) {
      yield group;
      group = [];
    }
  }
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
  const framesTotal = await estimateFrames(inputPath, fps);
  const frames = decodeFrames(inputPath, {
    fps,
    size: m.resolution,
    timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  const progress = (framesDone: number) => opts.onProgress?.({ framesDone, framesTotal });
  const { latent, shape, used } =
    opts.mode === "whole"
      ? await encodeWhole(rt, b, frames, batch, progress, opts.signal)
      : await encodeClips(rt, b, frames, batch, progress, opts.signal);
  if (used === 0) {
    const need = opts.mode === "whole" ? 1 + m.temporal_factor : m.frames.default;
    throw tooShort(used, fps, need, opts.mode);
  }
  const latents: NpyArray =
    opts.dtype === "float16"
      ? { dtype: "float16", shape, data: roundToHalf(latent) }
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
  frames: AsyncIterable<Uint8Array>,
  batch: number,
  progress: (framesDone: number) => void,
  signal?: AbortSignal,
): Promise<Encoded> {
  const m = b.manifest;
  const f = m.frames.default;
  const s = m.resolution;
  const inFlight: Promise<Float32Array>[] = [];
  const done: Float32Array[] = [];
  let pending: Uint8Array[][] = [];
  let clips = 0;
  let latentDims: number[] = [];

  const submit = async () => {
    const n = pending.length;
    const data = new Float32Array(n * 3 * f * s * s);
    pending.forEach((clip, i) => {
      writeFrames(data, i, clip, s, s);
    });
    pending = [];
    const p = rt.run(b, "encoder", { video: video(data, [n, 3, f, s, s]) }, signal).then((out) => {
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
  frames: AsyncIterable<Uint8Array>,
  stepChunks: number,
  progress: (framesDone: number) => void,
  signal?: AbortSignal,
): Promise<Encoded> {
  const m = b.manifest;
  const s = m.resolution;
  const stream = m.onnx.encoder_stream;
  const parts: Float32Array[] = [];
  let caches: Record<string, TensorValue> = {};
  let used = 0;
  let latentHW: [number, number] = [0, 0];

  const step = async (chunk: Uint8Array[]) => {
    const data = new Float32Array(3 * chunk.length * s * s);
    writeFrames(data, 0, chunk, s, s);
    const role = used === 0 ? "encoderInit" : "encoderStep";
    const out = await rt.run(
      b,
      role,
      { video: video(data, [1, 3, chunk.length, s, s]), ...caches },
      signal,
    );
    const latent = tensorOf(out, "latent");
    latentHW = [latent.dims[3] ?? 0, latent.dims[4] ?? 0];
    parts.push(latent.data as Float32Array);
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
  const c = m.latent_channels;
  const [h, w] = latentHW;
  const latent = concatTime(parts, c, h * w);
  return { latent, shape: [1, c, latent.length / (c * h * w), h, w], used };
}

function checkLatents(b: Bundle, latents: NpyArray): number[] {
  const m = b.manifest;
  const shape = latents.shape.length === 4 ? [1, ...latents.shape] : [...latents.shape];
  const [, c, t = 0, h = 0, w = 0] = shape;
  const problem =
    latents.dtype !== "float32" && latents.dtype !== "float16"
      ? `dtype ${latents.dtype}, expected float32 or float16`
      : shape.length !== 5
        ? `${latents.shape.length} dimensions, expected (N, C, t, h, w)`
        : c !== m.latent_channels
          ? `${c} channels, the model has ${m.latent_channels}`
          : shape.some((d) => d < 1)
            ? "an empty dimension"
            : Math.max(h, w) * m.spatial_factor > 4096
              ? `frames of ${h * m.spatial_factor}x${w * m.spatial_factor}, more than 4096 on a side`
              : t > 1 << 16
                ? `${t} latent frames, too many to decode`
                : null;
  if (problem !== null) {
    throw new PipelineError(
      "bad_latents",
      `latents of shape [${latents.shape.join(",")}] have ${problem}`,
      400,
    );
  }
  return shape;
}

/** Latent frames per decoder call (about 128 video frames), so long latents decode in bounded memory. */
export const DECODE_WINDOW = 32;

/**
 * Latent frames of history that a decoder output can depend on, an upper bound of its receptive
 * field in time: every causal convolution of diffusable's decoder (autoencoder.py: conv_in, the
 * middle block, num_res_blocks blocks per level, two per upsample, conv_out) has kernel 3, so it
 * looks back 2 frames at its rate, which is never lower than the latent rate. null when the
 * config does not say (then latents are decoded in one call).
 */
function decoderContext(config: Record<string, unknown>): number | null {
  const levels = Array.isArray(config.channel_mult) ? config.channel_mult.length : 0;
  const blocks = config.num_res_blocks;
  if (levels === 0 || typeof blocks !== "number") return null;
  const convs = 1 + 2 + levels * blocks * 2 + (levels - 1) * 2 + 1;
  return 2 * convs;
}

/** Latent frames [from, to) of item n of an (N, C, t, h, w) array, as a (1, C, to - from, h, w) copy. */
function latentWindow(data: Float32Array, shape: number[], n: number, from: number, to: number) {
  const [, c = 0, t = 0, h = 0, w = 0] = shape;
  const hw = h * w;
  const out = new Float32Array(c * (to - from) * hw);
  for (let ch = 0; ch < c; ch++) {
    const src = ((n * c + ch) * t + from) * hw;
    out.set(data.subarray(src, src + (to - from) * hw), ch * (to - from) * hw);
  }
  return out;
}

/**
 * The decoded frames of latents (N, C, t, h, w): item after item. Long items are decoded in
 * windows of `window` latent frames, each with enough earlier latent frames in front (see
 * decoderContext) that its outputs equal one call's; the frames of that context are dropped.
 * The next window decodes while the current one's frames are consumed.
 */
export async function* decodedFrames(
  rt: ModelRuntime,
  b: Bundle,
  latents: NpyArray,
  opts: { window?: number; signal?: AbortSignal } = {},
): AsyncGenerator<Uint8Array> {
  const shape = checkLatents(b, latents);
  const [n = 0, c = 0, t = 0, h = 0, w = 0] = shape;
  const data = latents.data as Float32Array;
  const tf = b.manifest.temporal_factor;
  const context = decoderContext(b.manifest.autoencoder_config);
  const window = opts.window ?? DECODE_WINDOW;
  // (item, first latent frame fed, first latent frame kept, end)
  const jobs: [number, number, number, number][] = [];
  for (let i = 0; i < n; i++) {
    if (context === null || t <= window + context) {
      jobs.push([i, 0, 0, t]);
      continue;
    }
    for (let s = 0; s < t; s += window)
      jobs.push([i, Math.max(0, s - context), s, Math.min(t, s + window)]);
  }
  const decode = ([i, from, , to]: [number, number, number, number]) =>
    rt
      .run(
        b,
        "decoder",
        { latent: video(latentWindow(data, shape, i, from, to), [1, c, to - from, h, w]) },
        opts.signal,
      )
      .then((out) => tensorOf(out, "video"));
  let next = decode(jobs[0] as [number, number, number, number]);
  for (let j = 0; j < jobs.length; j++) {
    const [, from, keep] = jobs[j] as [number, number, number, number];
    const current = await next;
    if (j + 1 < jobs.length) {
      next = decode(jobs[j + 1] as [number, number, number, number]);
      next.catch(() => {}); // observed on the next turn
    }
    // Latent frame `from` gives one video frame, every later one gives tf.
    const skip = keep === from ? 0 : 1 + tf * (keep - from - 1);
    yield* videoToFrames(current.data as Float32Array, current.dims).slice(skip);
  }
}

/**
 * Decodes latents (N, C, t, h, w) or (C, t, h, w) to a video file: each of the N items is decoded
 * on its own and their frames follow one another, at the bundle's fps.
 */
export async function decodeLatents(
  rt: ModelRuntime,
  bundleName: string,
  latents: NpyArray,
  opts: { format: VideoFormat; outPath: string; signal?: AbortSignal },
): Promise<{ frames: number }> {
  const b = rt.loaded(bundleName);
  const [, , , h = 0, w = 0] = checkLatents(b, latents);
  const sf = b.manifest.spatial_factor;
  return encodeFrames(decodedFrames(rt, b, latents, opts.signal ? { signal: opts.signal } : {}), {
    width: w * sf,
    height: h * sf,
    fps: b.manifest.fps,
    format: opts.format,
    outPath: opts.outPath,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
}

/**
 * video -> latents -> video in clip mode (the way the model was trained), writing the
 * reconstruction to outPath and returning PSNR and SSIM of every frame against the decoded input
 * (both at the bundle's size, on the [0, 1] scale).
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
  },
): Promise<{ frames: number; psnr: number[]; ssim: number[] }> {
  const b = rt.loaded(bundleName);
  const m = b.manifest;
  const fps = opts.fps ?? m.fps;
  checkFps(fps);
  const s = m.resolution;
  const f = m.frames.default;
  const source = decodeFrames(inputPath, {
    fps,
    size: s,
    timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  const psnrs: number[] = [];
  const ssims: number[] = [];
  async function* reconstructed() {
    for await (const clip of groups(source, f)) {
      const data = new Float32Array(3 * f * s * s);
      writeFrames(data, 0, clip, s, s);
      const enc = await rt.run(b, "encoder", { video: video(data, [1, 3, f, s, s]) }, opts.signal);
      const dec = await rt.run(b, "decoder", { latent: tensorOf(enc, "latent") }, opts.signal);
      const out = tensorOf(dec, "video");
      const frames = videoToFrames(out.data as Float32Array, out.dims);
      frames.forEach((frame, i) => {
        const original = clip[i] as Uint8Array;
        psnrs.push(psnr(original, frame));
        ssims.push(ssim(original, frame, s, s));
      });
      yield* frames;
    }
    if (psnrs.length === 0) throw tooShort(0, fps, f, "clip");
  }
  const { frames } = await encodeFrames(reconstructed(), {
    width: s,
    height: s,
    fps,
    format: opts.format,
    outPath: opts.outPath,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  return { frames, psnr: psnrs, ssim: ssims };
}
