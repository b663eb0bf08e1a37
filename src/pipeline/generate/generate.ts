// Generation (docs/sampler.md): seeded noise (noise.ts) -> the rectified-flow sampler (sampler.ts)
// with the bundle's denoiser.onnx run in the worker pool -> scaled latents -> decoder.onnx ->
// video files. The same bundle, label, seed and settings give byte-identical files.

import { decodeLatents } from "../autoencoder/decode.ts";
import { type Bundle, minFrames } from "../bundle.ts";
import { writeNpy } from "../media/npy-file.ts";
import type { OutputFormat } from "../media/output-formats.ts";
import { PipelineError } from "../pipeline-error.ts";
import type { ModelRuntime } from "../runtime.ts";
import type { DenoiserBatcher } from "./batcher.ts";
import { denoiserVelocity } from "./denoiser.ts";
import { gaussianNoise } from "./noise.ts";
import { type SamplerMethod, sample } from "./sampler.ts";

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
  /** The latents' shape (n, C, t, h, w). */
  shape: [number, number, number, number, number];
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
  const frames = opts.frames ?? m.frames.default;
  const least = minFrames(m);
  if (!Number.isInteger(frames) || frames < 1 || (frames - 1) % tf !== 0) {
    throw bad(
      "frames",
      `must follow the rule 1+${tf}k (${least}, ${least + tf}, ...), got ${frames}`,
    );
  }
  if (frames < least) {
    throw bad(
      "frames",
      `must be at least ${least} (the fewest model ${b.name} decodes: manifest frames.min), got ${frames}`,
    );
  }
  if (frames > m.frames.max) {
    throw bad(
      "frames",
      `must be at most ${m.frames.max} (model ${b.name}'s frames.max), got ${frames}`,
    );
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
    shape: [n, m.latent_channels, 1 + (frames - 1) / tf, hw, hw],
  };
}

/** Samples scaled latents (n, C, t, h, w) for a request; throws AbortError when aborted. */
export async function generateLatents(
  rt: ModelRuntime,
  b: Bundle,
  opts: GenerateOptions,
): Promise<{ settings: GenerateSettings; latents: Float32Array }> {
  const settings = resolveSettings(b, opts);
  const { shape } = settings;
  const count = shape.reduce((a, d) => a * d, 1);
  const noise = gaussianNoise(settings.seed, count);
  const labels = new BigInt64Array(settings.n).fill(BigInt(settings.label));
  const model = opts.batcher
    ? opts.batcher.velocity(b, opts.signal)
    : denoiserVelocity(rt, b, opts.signal);
  const latents = await sample(model, noise, shape, labels, {
    steps: settings.steps,
    guidance: settings.guidance,
    nullClass: settings.nullClass,
    method: settings.method,
    ...(opts.signal ? { signal: opts.signal } : {}),
    onStep: (step) => opts.onStep?.(step, settings.steps),
  });
  return { settings, latents };
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
  const { settings, latents } = await generateLatents(rt, b, opts);
  const [n, c, t, h, w] = settings.shape;
  if (opts.outPaths.length !== n) {
    throw new RangeError(`${opts.outPaths.length} output paths for ${n} videos`);
  }
  const per = c * t * h * w;
  for (let k = 0; k < n; k++) {
    const item = {
      dtype: "float32" as const,
      shape: [1, c, t, h, w],
      data: latents.slice(k * per, (k + 1) * per),
    };
    const outPath = opts.outPaths[k] as string;
    if (opts.format === "npy") {
      await writeNpy(outPath, item);
    } else {
      await decodeLatents(rt, b.name, item, {
        format: opts.format,
        outPath,
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
    }
  }
  return settings;
}
