// The rectified-flow sampler (docs/sampler.md), the TypeScript twin of diffusable/flow.py.
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

/** The denoiser: x (B, ...dims) float32, one time for every entry, labels (B,) -> v like x. */
export type VelocityFn = (
  x: Float32Array,
  dims: readonly number[],
  t: number,
  labels: BigInt64Array,
) => Promise<Float32Array>;

export interface SampleOptions {
  steps: number;
  guidance: number;
  nullClass: number;
  method: SamplerMethod;
  /** Called after each step with the step number (1..steps); throwing stops the sampler. */
  onStep?: (step: number, x: Float32Array) => void | Promise<void>;
  signal?: AbortSignal;
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
): Promise<Float32Array> {
  if (guidance === 1) return model(x, dims, t, labels);
  const b = dims[0] as number;
  const doubled = new Float32Array(x.length * 2);
  doubled.set(x, 0);
  doubled.set(x, x.length);
  const both = new BigInt64Array(b * 2);
  both.set(labels, 0);
  both.fill(BigInt(nullClass), b);
  const v = await model(doubled, [2 * b, ...dims.slice(1)], t, both);
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
  let x = Float32Array.from(noise);
  const velocity = (at: Float32Array, t: number) =>
    guidedVelocity(model, at, dims, t, labels, guidance, nullClass);
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
    await opts.onStep?.(i + 1, x);
  }
  return x;
}
