// Decoding: latents (N, C, t, h, w) -> frames -> a video file. Long latents are decoded in
// windows with enough earlier latent frames in front (the manifest's decoder_context_latents)
// that every window's frames equal one call's.

import type { Bundle, Manifest } from "../bundle.ts";
import type { NpyArray } from "../media/npy-file.ts";
import type { VideoFormat } from "../media/output-formats.ts";
import { videoToFrames } from "../media/tensor.ts";
import { encodeFrames } from "../media/video.ts";
import { PipelineError } from "../pipeline-error.ts";
import type { ModelRuntime } from "../runtime.ts";
import { tensorOf, video } from "./model-io.ts";

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
 * Latent frames of history that a decoder output can depend on: the manifest's
 * decoder_context_latents, which the export writes from the model's config. The service never
 * derives it from a config: a bundle without it (an export older than the field) has its latents
 * decoded in one call each, which is exact at any length, only without the bounded memory.
 */
export function decoderContext(manifest: Manifest): number | null {
  return manifest.decoder_context_latents ?? null;
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
  const context = decoderContext(b.manifest);
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
