// Generation (docs/sampler.md): seeded noise (noise.ts) -> the rectified-flow sampler (sampler.ts)
// with the bundle's denoiser.onnx run in the worker pool -> scaled latents -> decoder.onnx ->
// video files. The same bundle, label, seed and settings give byte-identical files.

import { decodedFrames, decodeLatents, decoderContext } from "../autoencoder/decode.ts";
import { type Bundle, minFrames } from "../bundle.ts";
import { writeNpy } from "../media/npy-file.ts";
import type { OutputFormat } from "../media/output-formats.ts";
import { concatTime } from "../media/tensor.ts";
import { encodeFrames } from "../media/video.ts";
import { PipelineError } from "../pipeline-error.ts";
import type { ModelRuntime } from "../runtime.ts";
import type { DenoiserBatcher } from "./batcher.ts";
import { denoiserVelocity } from "./denoiser.ts";
import { gaussianNoise } from "./noise.ts";
import { type ContextMode, type SamplerMethod, sample } from "./sampler.ts";

/** What an extension's output holds: only the new frames, or the input followed by them. */
export const OUTPUT_MODES = ["continuation", "whole"] as const;
export type OutputMode = (typeof OUTPUT_MODES)[number];

/**
 * What a generation starts from besides its label: "image" (latent frame 0 is the image's
 * latent, the rest is generated; `frames` counts the whole video) or "extend" (a video's latents:
 * its last manifest.decoder_context_latents latent frames are the context and `frames` more
 * video frames, a multiple of temporal_factor, are generated after them).
 */
export type GenerateCondition = { kind: "image" } | { kind: "extend"; output: OutputMode };

/** Encoded input latents (1, C, frames, h, w), scaled as the encoder gives them. */
export interface SourceLatents {
  latents: Float32Array;
  frames: number;
}

/** The condition's resolved settings. */
export interface ConditionSettings {
  kind: GenerateCondition["kind"];
  output: OutputMode;
  /** At most this many latent frames are given (1 for an image; decoder_context_latents for an
   * extension, fewer when the input has fewer). */
  contextLatents: number;
  /** "trained" when the bundle's denoiser was trained with context, else "replace". */
  contextMode: ContextMode;
}

/** A generated video in any output format, or for "npy" its scaled latent. */
export type GenerateFormat = OutputFormat;

export interface GenerateOptions {
  /** A class name of the bundle or its id. */
  label: string | number;
  seed: number;
  /** Default: the bundle's manifest.sampler. */
  steps?: number;
  guidance?: number;
  method?: SamplerMethod;
  /** Video frames, 1 + temporal_factor * k up to the bundle's maximum; default its default. */
  frames?: number;
  /** Videos in one batch (1..8); video k starts from slice k of the seed's noise. */
  n?: number;
  signal?: AbortSignal;
  /** Share denoiser calls with concurrent generations (batcher.ts); without it every call runs
   * alone. Either way the same seed gives the same bytes. */
  batcher?: DenoiserBatcher;
  /** After every sampler step (1..steps). */
  onStep?: (step: number, steps: number) => void | Promise<void>;
  /** Start from an image or continue a video; `source` holds its encoded latents. */
  condition?: GenerateCondition;
  /** Needed with `condition` by generateLatents (not by resolveSettings). */
  source?: SourceLatents;
}

/** The settings a generation actually used, every default filled in. */
export interface GenerateSettings {
  label: number;
  labelName: string;
  seed: number;
  steps: number;
  guidance: number;
  method: SamplerMethod;
  frames: number;
  n: number;
  nullClass: number;
  /** The sampled latents' shape (n, C, t, h, w); for an extension, its most context frames
   * plus the new ones (fewer context frames when the input has fewer). */
  shape: [number, number, number, number, number];
  condition: ConditionSettings | null;
}

/** "frames must be at most 65 (...), got 69.": a sentence that starts with the field. */
const bad = (field: string, message: string) =>
  new PipelineError("bad_request", `${field} ${message}.`, 400);

export const MAX_BATCH = 8;

/** Checks a request against a bundle and fills in the defaults; throws PipelineError (400/422). */
export function resolveSettings(b: Bundle, opts: GenerateOptions): GenerateSettings {
  const m = b.manifest;
  if (m.onnx.denoiser === undefined || m.sampler === undefined || m.null_class === undefined) {
    throw new PipelineError(
      "cannot_generate",
      `model "${b.name}" has no denoiser (manifest onnx.denoiser); it cannot generate`,
      422,
    );
  }
  let label: number;
  if (typeof opts.label === "number") {
    if (!Number.isInteger(opts.label) || opts.label < 0 || opts.label >= m.classes.length) {
      throw bad("label", `must be a class id in 0..${m.classes.length - 1}, got ${opts.label}`);
    }
    label = opts.label;
  } else {
    label = m.classes.indexOf(opts.label);
    if (label < 0) {
      throw bad(
        "label",
        `"${opts.label}" is not a class of model ${b.name}; known: ${m.classes.join(", ")}`,
      );
    }
  }
  const steps = opts.steps ?? m.sampler.steps;
  if (!Number.isInteger(steps) || steps < 1 || steps > m.sampler.max_steps) {
    throw bad(
      "steps",
      `must be an integer in 1..${m.sampler.max_steps} (model ${b.name}'s sampler.max_steps), got ${steps}`,
    );
  }
  const guidance = opts.guidance ?? m.sampler.guidance;
  if (!Number.isFinite(guidance) || guidance < 0) {
    throw bad("guidance", `must be a finite number >= 0, got ${guidance}`);
  }
  const tf = m.temporal_factor;
  const condition = opts.condition ? resolveCondition(b, opts.condition) : null;
  const maxLatent = 1 + (m.frames.max - 1) / tf;
  let frames: number;
  let latentFrames: number;
  if (condition?.kind === "extend") {
    const k = condition.contextLatents;
    frames = opts.frames ?? m.frames.default - 1;
    if (!Number.isInteger(frames) || frames < tf || frames % tf !== 0) {
      throw bad(
        "frames",
        `must be a multiple of ${tf} (the new frames of an extension: ${tf}, ${2 * tf}, ...), got ${frames}`,
      );
    }
    latentFrames = k + frames / tf;
    if (latentFrames > maxLatent) {
      throw bad(
        "frames",
        `must be at most ${tf * (maxLatent - k)} for an extension (model ${b.name} samples at most ${maxLatent} latent frames, manifest frames.max ${m.frames.max}, and ${k} of them are the context, manifest decoder_context_latents), got ${frames}`,
      );
    }
  } else {
    frames = opts.frames ?? m.frames.default;
    const least = Math.max(minFrames(m), condition ? 1 + tf : 1);
    if (!Number.isInteger(frames) || frames < 1 || (frames - 1) % tf !== 0) {
      throw bad(
        "frames",
        `must follow the rule 1+${tf}k (${least}, ${least + tf}, ...), got ${frames}`,
      );
    }
    if (frames < least) {
      const why = condition
        ? "an image-to-video generation has the image and at least one generated latent frame"
        : `the fewest model ${b.name} decodes: manifest frames.min`;
      throw bad("frames", `must be at least ${least} (${why}), got ${frames}`);
    }
    if (frames > m.frames.max) {
      throw bad(
        "frames",
        `must be at most ${m.frames.max} (model ${b.name}'s frames.max), got ${frames}`,
      );
    }
    latentFrames = 1 + (frames - 1) / tf;
  }
  const n = opts.n ?? 1;
  if (!Number.isInteger(n) || n < 1 || n > MAX_BATCH) {
    throw bad("n", `must be an integer in 1..${MAX_BATCH}, got ${n}`);
  }
  if (!Number.isSafeInteger(opts.seed) || opts.seed < 0) {
    throw bad("seed", `must be an integer in 0..2^53-1, got ${opts.seed}`);
  }
  const hw = m.resolution / m.spatial_factor;
  return {
    label,
    labelName: m.classes[label] as string,
    seed: opts.seed,
    steps,
    guidance,
    method: opts.method ?? m.sampler.method,
    frames,
    n,
    nullClass: m.null_class,
    shape: [n, m.latent_channels, latentFrames, hw, hw],
    condition,
  };
}

/** The condition against the bundle: how many latent frames are given, in which mode. */
function resolveCondition(b: Bundle, c: GenerateCondition): ConditionSettings {
  const m = b.manifest;
  const contextMode: ContextMode = m.denoiser_config?.context === true ? "trained" : "replace";
  if (c.kind === "image") {
    return { kind: "image", output: "whole", contextLatents: 1, contextMode };
  }
  const k = decoderContext(m);
  const maxLatent = 1 + (m.frames.max - 1) / m.temporal_factor;
  if (k === null || !Number.isInteger(k) || k < 1) {
    throw new PipelineError(
      "cannot_extend",
      `model "${b.name}" has no manifest decoder_context_latents; it cannot extend videos`,
      422,
    );
  }
  if (k >= maxLatent) {
    throw new PipelineError(
      "cannot_extend",
      `model "${b.name}"'s context of ${k} latent frames (manifest decoder_context_latents) leaves no room in the ${maxLatent} latent frames it samples (manifest frames.max ${m.frames.max})`,
      422,
    );
  }
  return { kind: "extend", output: c.output, contextLatents: k, contextMode };
}

/** Latent frames [from, to) of a (1, C, t, h, w) array, as (1, C, to - from, h, w). */
function timeSlice(data: Float32Array, c: number, t: number, hw: number, from: number, to: number) {
  const out = new Float32Array(c * (to - from) * hw);
  for (let ch = 0; ch < c; ch++) {
    out.set(data.subarray((ch * t + from) * hw, (ch * t + to) * hw), ch * (to - from) * hw);
  }
  return out;
}

/** Samples scaled latents (n, C, t, h, w) for a request; throws AbortError when aborted. With
 * a condition, settings.shape is the shape sampled (an extension's context frames, as many as
 * the source has up to decoder_context_latents, then the new ones) and `given` the context
 * frames used. */
export async function generateLatents(
  rt: ModelRuntime,
  b: Bundle,
  opts: GenerateOptions,
): Promise<{ settings: GenerateSettings; latents: Float32Array; given: number }> {
  const settings = resolveSettings(b, opts);
  const { condition } = settings;
  const [n, c, t0, h, w] = settings.shape;
  let context: { latents: Float32Array; frames: number; mode: ContextMode } | undefined;
  if (condition) {
    const source = opts.source;
    const hw = h * w;
    if (!source || source.frames < 1 || source.latents.length !== c * source.frames * hw) {
      throw new PipelineError(
        "bad_input",
        `the input's latents do not fit model ${b.name} (${c} channels of ${h}x${w})`,
        422,
      );
    }
    const k = Math.min(condition.contextLatents, source.frames);
    const from = condition.kind === "image" ? 0 : source.frames - k;
    const one = timeSlice(source.latents, c, source.frames, hw, from, from + k);
    const latents = new Float32Array(n * one.length);
    for (let i = 0; i < n; i++) latents.set(one, i * one.length);
    context = { latents, frames: k, mode: condition.contextMode };
    settings.shape = [n, c, t0 - condition.contextLatents + k, h, w];
  }
  const count = settings.shape.reduce((a, d) => a * d, 1);
  const noise = gaussianNoise(settings.seed, count);
  const labels = new BigInt64Array(settings.n).fill(BigInt(settings.label));
  const model = opts.batcher
    ? opts.batcher.velocity(b, opts.signal)
    : denoiserVelocity(rt, b, opts.signal);
  const latents = await sample(model, noise, settings.shape, labels, {
    steps: settings.steps,
    guidance: settings.guidance,
    nullClass: settings.nullClass,
    method: settings.method,
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(context ? { context } : {}),
    onStep: (step) => opts.onStep?.(step, settings.steps),
  });
  return { settings, latents, given: context?.frames ?? 0 };
}

/**
 * Generates and writes one file per video: outPaths[k] gets video k, as a video in `format`, or
 * for "npy" its scaled latent (1, C, t, h, w) float32 (what decoder.onnx takes).
 */
export async function generateFiles(
  rt: ModelRuntime,
  b: Bundle,
  opts: GenerateOptions & { format: GenerateFormat; outPaths: string[] },
): Promise<GenerateSettings> {
  const { settings, latents, given } = await generateLatents(rt, b, opts);
  const [n, c, t, h, w] = settings.shape;
  if (opts.outPaths.length !== n) {
    throw new RangeError(`${opts.outPaths.length} output paths for ${n} videos`);
  }
  const per = c * t * h * w;
  const hw = h * w;
  const tf = b.manifest.temporal_factor;
  const signal = opts.signal ? { signal: opts.signal } : {};
  for (let k = 0; k < n; k++) {
    const window = latents.slice(k * per, (k + 1) * per);
    const outPath = opts.outPaths[k] as string;
    const item = (data: Float32Array) => ({
      dtype: "float32" as const,
      shape: [1, c, data.length / (c * hw), h, w],
      data,
    });
    if (settings.condition?.kind === "extend" && settings.condition.output === "whole") {
      // The input's latents followed by the new ones: decoded as one causal sequence.
      const source = opts.source as SourceLatents;
      const fresh = timeSlice(window, c, t, hw, given, t);
      const whole = item(concatTime([source.latents, fresh], c, hw));
      if (opts.format === "npy") await writeNpy(outPath, whole);
      else await decodeLatents(rt, b.name, whole, { format: opts.format, outPath, ...signal });
    } else if (settings.condition?.kind === "extend") {
      // Only the new frames: the context latents decode in front of them (decoder_context_latents
      // of them make the new frames equal to the whole sequence's) and their frames are dropped.
      if (opts.format === "npy") {
        await writeNpy(outPath, item(timeSlice(window, c, t, hw, given, t)));
      } else {
        const skip = 1 + tf * (given - 1);
        async function* continuation() {
          let i = 0;
          for await (const frame of decodedFrames(rt, b, item(window), signal)) {
            if (i++ >= skip) yield frame;
          }
        }
        await encodeFrames(continuation(), {
          width: w * b.manifest.spatial_factor,
          height: h * b.manifest.spatial_factor,
          fps: b.manifest.fps,
          format: opts.format,
          outPath,
          ...signal,
        });
      }
    } else if (opts.format === "npy") {
      await writeNpy(outPath, item(window));
    } else {
      await decodeLatents(rt, b.name, item(window), { format: opts.format, outPath, ...signal });
    }
  }
  return settings;
}
