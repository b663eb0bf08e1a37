// Video extension in the denoiser's training windows (docs/sampler.md "Context"): a context-trained
// denoiser learnt on windows of T = window_latents latent frames whose first k were given, and
// latent frame 0 of a window is always an image latent (one frame encoded alone). So every
// window's context is made in pixels: the last 1 + tf (k - 1) frames before it (the input's for
// the first window, the previous window's decoded frames afterwards), encoded as a clip of their
// own. Extending by g latent frames (tf g new frames): for g <= T - k_ext one window with
// k = T - g; for more, windows of k_ext given and T - k_ext generated, the last one generating the
// remainder (k = T - remainder). Noise: window j of n videos takes slice j of the seed's stream.

import { tensorOf, video } from "../autoencoder/model-io.ts";
import type { Bundle, Manifest } from "../bundle.ts";
import { framesToVideo, videoToFrames } from "../media/tensor.ts";
import { PipelineError } from "../pipeline-error.ts";
import type { ModelRuntime } from "../runtime.ts";
import { gaussianNoise } from "./noise.ts";
import { type ContextMode, type SamplerMethod, sample, type VelocityFn } from "./sampler.ts";

/** The manifest's "conditioning", or the fallback for a bundle without it (its frames.default
 * window, an extension context of 2 latent frames); null where a window holds fewer than 2
 * latent frames (nothing to give and generate). */
export interface Conditioning {
  windowFrames: number;
  windowLatents: number;
  maxContextLatents: number;
  extensionContextLatents: number;
}

export function conditioningOf(m: Manifest): Conditioning | null {
  const c = m.conditioning;
  if (c) {
    if (c.window_latents < 2) return null;
    const max = Math.min(c.max_context_latents, c.window_latents - 1);
    return {
      windowFrames: c.window_frames,
      windowLatents: c.window_latents,
      maxContextLatents: max,
      extensionContextLatents: Math.min(c.extension_context_latents, max),
    };
  }
  const t = 1 + (m.frames.default - 1) / m.temporal_factor;
  if (!Number.isInteger(t) || t < 2) return null;
  return {
    windowFrames: m.frames.default,
    windowLatents: t,
    maxContextLatents: t - 1,
    extensionContextLatents: Math.min(2, t - 1),
  };
}

/** One window of an extension: `context` latent frames given, `generated` sampled (context +
 * generated = window_latents), the first `kept` of them used (fewer only in the last window). */
export interface ExtensionWindow {
  context: number;
  generated: number;
  kept: number;
}

/**
 * The windows that extend by `newLatents` latent frames an input of `inputLatents` latent frames'
 * worth of frames (1 + tf (L - 1)); a short input gives the first window fewer context frames
 * (and it generates more than it keeps when that is the last window).
 */
export function extensionWindows(
  c: Conditioning,
  newLatents: number,
  inputLatents = Number.POSITIVE_INFINITY,
): ExtensionWindow[] {
  const t = c.windowLatents;
  const kExt = c.extensionContextLatents;
  const out: ExtensionWindow[] = [];
  let remaining = newLatents;
  let available = inputLatents;
  while (remaining > 0) {
    const want = remaining <= t - kExt ? t - remaining : kExt;
    const context = Math.max(1, Math.min(want, available, c.maxContextLatents));
    const generated = t - context;
    const kept = Math.min(generated, remaining);
    out.push({ context, generated, kept });
    remaining -= kept;
    available = t; // the next context comes from this window's decoded frames
  }
  return out;
}

export interface ExtendRequest {
  /** The frames the first window's context is cut from (bundle resolution, rgb24). */
  input: readonly Uint8Array[];
  /** Latent frames to add (tf of them are tf * newLatents video frames). */
  newLatents: number;
  n: number;
  seed: number;
  label: number;
  steps: number;
  guidance: number;
  nullClass: number;
  method: SamplerMethod;
  contextMode: ContextMode;
  model: VelocityFn;
  signal?: AbortSignal;
  /** After every sampler step: (step of all windows, steps of all windows). */
  onStep?: (step: number, total: number) => void | Promise<void>;
}

/** Encodes frames (rgb24, resolution square) as one clip: (C, t, h, w) latents, t = 1 + (F - 1) / tf. */
export async function encodeClip(
  rt: ModelRuntime,
  b: Bundle,
  frames: readonly Uint8Array[],
  signal?: AbortSignal,
): Promise<Float32Array> {
  const s = b.manifest.resolution;
  const out = await rt.run(
    b,
    "encoder",
    { video: video(framesToVideo(frames, s, s), [1, 3, frames.length, s, s]) },
    signal,
  );
  return tensorOf(out, "latent").data as Float32Array;
}

/** Decodes (C, t, h, w) latents to their 1 + tf (t - 1) frames. */
async function decodeClip(
  rt: ModelRuntime,
  b: Bundle,
  latents: Float32Array,
  t: number,
  signal?: AbortSignal,
): Promise<Uint8Array[]> {
  const m = b.manifest;
  const hw = m.resolution / m.spatial_factor;
  const out = await rt.run(
    b,
    "decoder",
    { latent: video(latents, [1, m.latent_channels, t, hw, hw]) },
    signal,
  );
  const v = tensorOf(out, "video");
  return videoToFrames(v.data as Float32Array, v.dims);
}

/**
 * Samples an extension: for each of the n videos, the tf * newLatents frames that follow
 * `input`, window after window (see the file's head). Deterministic: the same seed, input and
 * settings give the same frames.
 */
export async function extendFrames(
  rt: ModelRuntime,
  b: Bundle,
  req: ExtendRequest,
): Promise<{ frames: Uint8Array[][]; windows: ExtensionWindow[] }> {
  const m = b.manifest;
  const tf = m.temporal_factor;
  const cond = conditioningOf(m);
  if (!cond) {
    throw new PipelineError("cannot_extend", `model "${b.name}" has no context window`, 422);
  }
  if (req.input.length < 1) {
    throw new PipelineError("bad_input", "the input has no frames to continue", 422);
  }
  const inputLatents = 1 + Math.floor((req.input.length - 1) / tf);
  const windows = extensionWindows(cond, req.newLatents, inputLatents);
  const t = cond.windowLatents;
  const c = m.latent_channels;
  const hw = (m.resolution / m.spatial_factor) ** 2;
  const side = m.resolution / m.spatial_factor;
  const per = c * t * hw;
  const { n } = req;
  const noise = gaussianNoise(req.seed, windows.length * n * per);
  const labels = new BigInt64Array(n).fill(BigInt(req.label));
  let tails: (readonly Uint8Array[])[] = Array.from({ length: n }, () => req.input);
  const out: Uint8Array[][] = Array.from({ length: n }, () => []);
  const total = windows.length * req.steps;
  for (const [j, w] of windows.entries()) {
    const k = w.context;
    const ctxFrames = 1 + tf * (k - 1);
    const ctx = new Float32Array(n * c * k * hw);
    let first: Float32Array | undefined;
    for (let i = 0; i < n; i++) {
      // Before the first window every video continues the same input: one encoder call.
      const latent =
        j === 0 && first
          ? first
          : await encodeClip(rt, b, tails[i]?.slice(-ctxFrames) ?? [], req.signal);
      if (latent.length !== c * k * hw) {
        throw new PipelineError(
          "model_failed",
          `the context encoded to ${latent.length} values`,
          500,
        );
      }
      first ??= latent;
      ctx.set(latent, i * c * k * hw);
    }
    const latents = await sample(
      req.model,
      noise.slice(j * n * per, (j + 1) * n * per),
      [n, c, t, side, side],
      labels,
      {
        steps: req.steps,
        guidance: req.guidance,
        nullClass: req.nullClass,
        method: req.method,
        ...(req.signal ? { signal: req.signal } : {}),
        context: { latents: ctx, frames: k, mode: req.contextMode },
        onStep: (step) => req.onStep?.(j * req.steps + step, total),
      },
    );
    const next: Uint8Array[][] = [];
    for (let i = 0; i < n; i++) {
      const decoded = await decodeClip(rt, b, latents.slice(i * per, (i + 1) * per), t, req.signal);
      // The first 1 + tf (k - 1) frames reconstruct the context; the rest continue it.
      out[i]?.push(...decoded.slice(ctxFrames, ctxFrames + tf * w.kept));
      next.push(decoded);
    }
    tails = next;
  }
  return { frames: out, windows };
}
