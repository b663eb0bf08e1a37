// Generation (docs/sampler.md): seeded noise (noise.ts) -> the rectified-flow sampler (sampler.ts)
// with the bundle's denoiser.onnx run in the worker pool -> scaled latents -> decoder.onnx ->
// video files. The same bundle, label, seed and settings give byte-identical files.

import { decodedFrames, decodeLatents } from "../autoencoder/decode.ts";
import { type Bundle, minFrames } from "../bundle.ts";
import { writeNpy } from "../media/npy-file.ts";
import type { OutputFormat } from "../media/output-formats.ts";
import { concatTime } from "../media/tensor.ts";
import { encodeFrames } from "../media/video.ts";
import { PipelineError } from "../pipeline-error.ts";
import type { ModelRuntime } from "../runtime.ts";
import type { DenoiserBatcher } from "./batcher.ts";
import { denoiserVelocity } from "./denoiser.ts";
import {
  conditioningOf,
  type ExtensionWindow,
  encodeClip,
  extendFrames,
  extensionWindows,
} from "./extend.ts";
import { gaussianNoise } from "./noise.ts";
import { type ContextMode, type SamplerMethod, sample } from "./sampler.ts";

/** What an extension's output holds: only the new frames, or the input followed by them. */
export const OUTPUT_MODES = ["continuation", "whole"] as const;
export type OutputMode = (typeof OUTPUT_MODES)[number];

/**
 * What a generation starts from besides its label: "image" (latent frame 0 is the image's
 * latent, the rest is generated; `frames` counts the whole video) or "extend" (a video: `frames`
 * more video frames, a multiple of temporal_factor, are generated after it in the denoiser's
 * training windows, manifest "conditioning": extend.ts).
 */
export type GenerateCondition = { kind: "image" } | { kind: "extend"; output: OutputMode };

/** Encoded input latents (1, C, frames, h, w), scaled as the encoder gives them; for a video
 * input also its frames (rgb24 at the bundle's resolution, the 1 + tf (frames - 1) the latents
 * encode), from which an extension's first context is cut. */
export interface SourceLatents {
  latents: Float32Array;
  frames: number;
  pixels?: Uint8Array[];
}

/** The condition's resolved settings. */
export interface ConditionSettings {
  kind: GenerateCondition["kind"];
  output: OutputMode;
  /** Latent frames given (1 for an image; for an extension, those of its first window, fewer
   * when the input is shorter). */
  contextLatents: number;
  /** An extension's windows (extend.ts extensionWindows), for an input long enough. */
  windows?: ExtensionWindow[];
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
  /** The sampled latents' shape (n, C, t, h, w); for an extension, that of each window
   * (t = the conditioning's window_latents). */
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
  let frames: number;
  let latentFrames: number;
  if (condition?.kind === "extend") {
    const cond = conditioningOf(m);
    if (!cond) throw new Error("unreachable: resolveCondition checked the window");
    const oneWindow = tf * (cond.windowLatents - cond.extensionContextLatents);
    frames = opts.frames ?? oneWindow;
    if (!Number.isInteger(frames) || frames < tf || frames % tf !== 0) {
      throw bad(
        "frames",
        `must be a positive multiple of ${tf} (the new frames of an extension: ${tf}, ${2 * tf}, ...), got ${frames}`,
      );
    }
    const most = tf * Math.floor(m.frames.max / tf);
    if (frames > most) {
      throw bad(
        "frames",
        `must be at most ${most} for an extension (model ${b.name}'s frames.max ${m.frames.max}, as a multiple of ${tf}; extend the output again for more), got ${frames}`,
      );
    }
    latentFrames = cond.windowLatents;
    condition.windows = extensionWindows(cond, frames / tf);
    condition.contextLatents = condition.windows[0]?.context ?? 1;
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
  const cond = conditioningOf(m);
  if (!cond) {
    throw new PipelineError(
      "cannot_extend",
      `model "${b.name}" has no context window of at least 2 latent frames (manifest conditioning, or frames.default); it cannot extend videos`,
      422,
    );
  }
  return {
    kind: "extend",
    output: c.output,
    contextLatents: cond.extensionContextLatents,
    contextMode,
  };
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
 * an image condition, latent frame 0 is the image's and `given` is 1. An extension samples
 * window after window in pixels (extend.ts): use generateFiles. */
export async function generateLatents(
  rt: ModelRuntime,
  b: Bundle,
  opts: GenerateOptions,
): Promise<{ settings: GenerateSettings; latents: Float32Array; given: number }> {
  const settings = resolveSettings(b, opts);
  const { condition } = settings;
  if (condition?.kind === "extend") {
    throw new RangeError("an extension is sampled by generateFiles (windows in pixels)");
  }
  const [n, c, , h, w] = settings.shape;
  let context: { latents: Float32Array; frames: number; mode: ContextMode } | undefined;
  if (condition) {
    const source = checkSource(b, opts.source, c, h * w);
    const one = timeSlice(source.latents, c, source.frames, h * w, 0, 1);
    const latents = new Float32Array(n * one.length);
    for (let i = 0; i < n; i++) latents.set(one, i * one.length);
    context = { latents, frames: 1, mode: condition.contextMode };
  }
  const count = settings.shape.reduce((a, d) => a * d, 1);
  const noise = gaussianNoise(settings.seed, count);
  const labels = new BigInt64Array(settings.n).fill(BigInt(settings.label));
  const latents = await sample(velocityOf(rt, b, opts), noise, settings.shape, labels, {
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

function velocityOf(rt: ModelRuntime, b: Bundle, opts: GenerateOptions) {
  return opts.batcher
    ? opts.batcher.velocity(b, opts.signal)
    : denoiserVelocity(rt, b, opts.signal);
}

function checkSource(
  b: Bundle,
  source: SourceLatents | undefined,
  c: number,
  hw: number,
): SourceLatents {
  if (!source || source.frames < 1 || source.latents.length !== c * source.frames * hw) {
    const side = Math.sqrt(hw);
    throw new PipelineError(
      "bad_input",
      `the input's latents do not fit model ${b.name} (${c} channels of ${side}x${side})`,
      422,
    );
  }
  return source;
}

/**
 * Generates and writes one file per video: outPaths[k] gets video k, as a video in `format`, or
 * for "npy" its scaled latent (1, C, t, h, w) float32 (what decoder.onnx takes). An extension's
 * files: see extensionFiles.
 */
export async function generateFiles(
  rt: ModelRuntime,
  b: Bundle,
  opts: GenerateOptions & { format: GenerateFormat; outPaths: string[] },
): Promise<GenerateSettings> {
  if (opts.condition?.kind === "extend") return extensionFiles(rt, b, opts);
  const { settings, latents } = await generateLatents(rt, b, opts);
  const [n, c, t, h, w] = settings.shape;
  if (opts.outPaths.length !== n) {
    throw new RangeError(`${opts.outPaths.length} output paths for ${n} videos`);
  }
  const per = c * t * h * w;
  const signal = opts.signal ? { signal: opts.signal } : {};
  for (let k = 0; k < n; k++) {
    const item = {
      dtype: "float32" as const,
      shape: [1, c, t, h, w],
      data: latents.slice(k * per, (k + 1) * per),
    };
    const outPath = opts.outPaths[k] as string;
    if (opts.format === "npy") await writeNpy(outPath, item);
    else await decodeLatents(rt, b.name, item, { format: opts.format, outPath, ...signal });
  }
  return settings;
}

/**
 * An extension (extend.ts): the new frames of each video, sampled window by window from the
 * input's frames (a video input's own frames, or a latents input decoded by the bundle). Video
 * formats: "continuation" is the new frames only, "whole" the input's frames as the bundle
 * reconstructs them (its latents decoded) followed by them. "npy": the new frames' latents as
 * encoding the input's frames and them as one clip gives them (the last F / tf latent frames);
 * "whole" puts the input's own latents in front.
 */
async function extensionFiles(
  rt: ModelRuntime,
  b: Bundle,
  opts: GenerateOptions & { format: GenerateFormat; outPaths: string[] },
): Promise<GenerateSettings> {
  const settings = resolveSettings(b, opts);
  const condition = settings.condition as ConditionSettings;
  const [n, c, , h, w] = settings.shape;
  if (opts.outPaths.length !== n) {
    throw new RangeError(`${opts.outPaths.length} output paths for ${n} videos`);
  }
  const source = checkSource(b, opts.source, c, h * w);
  const m = b.manifest;
  const tf = m.temporal_factor;
  const signal = opts.signal ? { signal: opts.signal } : {};
  let reconstruction: Uint8Array[] | undefined;
  const reconstruct = async () => {
    if (!reconstruction) {
      const latents = {
        dtype: "float32" as const,
        shape: [1, c, source.frames, h, w],
        data: source.latents,
      };
      reconstruction = [];
      for await (const frame of decodedFrames(rt, b, latents, signal)) reconstruction.push(frame);
    }
    return reconstruction;
  };
  const input = source.pixels ?? (await reconstruct());
  const { frames, windows } = await extendFrames(rt, b, {
    input,
    newLatents: settings.frames / tf,
    n,
    seed: settings.seed,
    label: settings.label,
    steps: settings.steps,
    guidance: settings.guidance,
    nullClass: settings.nullClass,
    method: settings.method,
    contextMode: condition.contextMode,
    model: velocityOf(rt, b, opts),
    ...signal,
    onStep: (step, total) =>
      opts.onStep?.(Math.ceil((step * settings.steps) / total), settings.steps),
  });
  condition.windows = windows;
  condition.contextLatents = windows[0]?.context ?? condition.contextLatents;
  const whole = condition.output === "whole";
  for (let k = 0; k < n; k++) {
    const fresh = frames[k] as Uint8Array[];
    const outPath = opts.outPaths[k] as string;
    if (opts.format === "npy") {
      // The new frames' latents as an encoding of the input's frames and them would hold them
      // (one clip: causal, so they follow the input's frames), after the input's own latents.
      const all = [...input, ...fresh];
      const encoded = await encodeClip(rt, b, all, opts.signal);
      const t = 1 + (all.length - 1) / tf;
      const tail = timeSlice(encoded, c, t, h * w, t - fresh.length / tf, t);
      const data = whole ? concatTime([source.latents, tail], c, h * w) : tail;
      await writeNpy(outPath, {
        dtype: "float32",
        shape: [1, c, data.length / (c * h * w), h, w],
        data,
      });
    } else {
      const out = whole ? [...(await reconstruct()), ...fresh] : fresh;
      await encodeFrames(out, {
        width: w * m.spatial_factor,
        height: h * m.spatial_factor,
        fps: m.fps,
        format: opts.format,
        outPath,
        ...signal,
      });
    }
  }
  return settings;
}
