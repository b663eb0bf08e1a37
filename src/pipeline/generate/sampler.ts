// The rectified-flow sampler (docs/sampler.md), the TypeScript twin of diffusable/models/flow.py.
// It knows nothing of onnxruntime: the denoiser comes in as a velocity function, so the same code
// runs on a worker-pool session, and its parity with PyTorch is tested from saved noise.
//
// Convention: x_t = (1 - t) x_0 + t e, the model predicts v = e - x_0; integrate from t = 1 down
// to t = 0 on the uniform grid t_i = 1 - i/N. Arithmetic is float32, as in PyTorch: every
// element update is rounded with Math.fround.

/** The integration methods, the TypeScript names of flow.py's (checked by a test against the
 * Python package); the bundle manifest, the request schema and the OpenAPI document read them. */
export const SAMPLER_METHODS = ["euler", "heun"] as const;
export type SamplerMethod = (typeof SAMPLER_METHODS)[number];

/** How given leading latent frames are kept (flow.py CONTEXT_MODES): "trained" holds the clean
 * latents and tells a context-trained denoiser how many frames are given; "replace" (any
 * denoiser) sets them to the context noised to the current time and tells the model nothing. */
export const CONTEXT_MODES = ["trained", "replace"] as const;
export type ContextMode = (typeof CONTEXT_MODES)[number];

/** The denoiser: x (B, ...dims) float32, one time for every entry, labels (B,) -> v like x.
 * `context` (B,), when given, is how many leading latent frames of each row are clean given
 * latents (a context-trained denoiser's fourth input); absent means none. */
export type VelocityFn = (
  x: Float32Array,
  dims: readonly number[],
  t: number,
  labels: BigInt64Array,
  context?: BigInt64Array,
) => Promise<Float32Array>;

/** Given latents for the first `frames` latent frames of every row. */
export interface SampleContext {
  /** (B, C, frames, h, w) float32, C order: the same B, C, h, w as the noise. */
  latents: Float32Array;
  frames: number;
  mode: ContextMode;
}

export interface SampleOptions {
  steps: number;
  guidance: number;
  nullClass: number;
  method: SamplerMethod;
  /** Called after each step with the step number (1..steps); throwing stops the sampler. */
  onStep?: (step: number, x: Float32Array) => void | Promise<void>;
  signal?: AbortSignal;
  /** Leading latent frames kept fixed while the rest is generated (flow.py sample's context). */
  context?: SampleContext;
}

/** v = v_null + g (v_label - v_null); g = 1 skips the null pass. One batch of 2B, labelled first. */
export async function guidedVelocity(
  model: VelocityFn,
  x: Float32Array,
  dims: readonly number[],
  t: number,
  labels: BigInt64Array,
  guidance: number,
  nullClass: number,
  context?: BigInt64Array,
): Promise<Float32Array> {
  if (guidance === 1)
    return context ? model(x, dims, t, labels, context) : model(x, dims, t, labels);
  const b = dims[0] as number;
  const doubled = new Float32Array(x.length * 2);
  doubled.set(x, 0);
  doubled.set(x, x.length);
  const both = new BigInt64Array(b * 2);
  both.set(labels, 0);
  both.fill(BigInt(nullClass), b);
  const doubledDims = [2 * b, ...dims.slice(1)];
  let v: Float32Array;
  if (context) {
    const given = new BigInt64Array(b * 2);
    given.set(context, 0);
    given.set(context, b);
    v = await model(doubled, doubledDims, t, both, given);
  } else {
    v = await model(doubled, doubledDims, t, both);
  }
  const g = Math.fround(guidance);
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const vl = v[i] as number;
    const vn = v[i + x.length] as number;
    out[i] = Math.fround(vn + Math.fround(g * Math.fround(vl - vn)));
  }
  return out;
}

/** Integrates from x_1 = noise to x_0 in `steps` steps; returns x_0 (a new array). */
export async function sample(
  model: VelocityFn,
  noise: Float32Array,
  dims: readonly number[],
  labels: BigInt64Array,
  opts: SampleOptions,
): Promise<Float32Array> {
  const { steps, guidance, nullClass, method } = opts;
  if (!Number.isInteger(steps) || steps < 1)
    throw new RangeError(`steps must be >= 1, got ${steps}`);
  if (labels.length !== dims[0]) {
    throw new RangeError(`${labels.length} labels for a batch of ${dims[0]}`);
  }
  const pin = contextPinner(noise, dims, opts.context);
  const given = opts.context?.mode === "trained" ? pin.given : undefined;
  let x = Float32Array.from(noise);
  pin.apply(x, 1);
  const velocity = (at: Float32Array, t: number) =>
    guidedVelocity(model, at, dims, t, labels, guidance, nullClass, given);
  for (let i = 0; i < steps; i++) {
    opts.signal?.throwIfAborted();
    const tNow = 1 - i / steps;
    const tNext = 1 - (i + 1) / steps;
    const dt = Math.fround(tNext - tNow); // negative; PyTorch rounds the scalar to float32
    const d1 = await velocity(x, tNow);
    const next = new Float32Array(x.length);
    if (method === "heun" && i < steps - 1) {
      // Heun's correction at t_next; the last step (t_next = 0) stays Euler, as in flow.py.
      const predicted = new Float32Array(x.length);
      for (let j = 0; j < x.length; j++) {
        predicted[j] = Math.fround((x[j] as number) + Math.fround(dt * (d1[j] as number)));
      }
      pin.apply(predicted, tNext);
      const d2 = await velocity(predicted, tNext);
      const half = Math.fround(dt * 0.5);
      for (let j = 0; j < x.length; j++) {
        const sum = Math.fround((d1[j] as number) + (d2[j] as number));
        next[j] = Math.fround((x[j] as number) + Math.fround(half * sum));
      }
    } else {
      for (let j = 0; j < x.length; j++) {
        next[j] = Math.fround((x[j] as number) + Math.fround(dt * (d1[j] as number)));
      }
    }
    x = next;
    pin.apply(x, tNext);
    await opts.onStep?.(i + 1, x);
  }
  return x;
}

/**
 * flow.py sample's `pin`: writes the given leading latent frames into x in place. "trained": the
 * clean latents; "replace": (1 - t) c + t e with e the row's own noise, in float32 as PyTorch
 * rounds it (each scalar to float32, each product, then the sum). `given` is the count per row
 * for a context-trained denoiser. Without a context, apply does nothing.
 */
export function contextPinner(
  noise: Float32Array,
  dims: readonly number[],
  context: SampleContext | undefined,
): { apply: (x: Float32Array, t: number) => void; given: BigInt64Array | undefined } {
  const k = context?.frames ?? 0;
  if (!context || k === 0) return { apply: () => {}, given: undefined };
  const [b = 0, c = 0, frames = 0, ...rest] = dims;
  const hw = rest.reduce((a, d) => a * d, 1);
  if (!CONTEXT_MODES.includes(context.mode)) {
    throw new RangeError(`unknown context mode "${context.mode}" (${CONTEXT_MODES.join(" | ")})`);
  }
  if (!Number.isInteger(k) || k < 0 || k > frames) {
    throw new RangeError(`a context of ${k} frames for latents of ${frames} frames`);
  }
  if (context.latents.length !== b * c * k * hw) {
    throw new RangeError(
      `context latents of ${context.latents.length} values for (${b}, ${c}, ${k}, ${rest.join(", ")})`,
    );
  }
  const span = k * hw; // one (row, channel)'s given values
  const apply = (x: Float32Array, t: number) => {
    const keep = Math.fround(1 - t);
    const tt = Math.fround(t);
    for (let rc = 0; rc < b * c; rc++) {
      const dst = rc * frames * hw;
      const src = rc * span;
      if (context.mode === "trained") {
        x.set(context.latents.subarray(src, src + span), dst);
        continue;
      }
      for (let j = 0; j < span; j++) {
        const cv = Math.fround(keep * (context.latents[src + j] as number));
        const ev = Math.fround(tt * (noise[dst + j] as number));
        x[dst + j] = Math.fround(cv + ev);
      }
    }
  };
  return { apply, given: new BigInt64Array(b).fill(BigInt(k)) };
}
