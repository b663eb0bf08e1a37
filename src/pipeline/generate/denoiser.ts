// The denoiser as the sampler sees it: one denoiser.onnx call in the worker pool, alone or as
// the shared call of the batcher (batcher.ts), with one check of its output.

import type { Bundle } from "../bundle.ts";
import type { Feeds } from "../onnx/session-pool.ts";
import { PipelineError } from "../pipeline-error.ts";
import type { ModelRuntime } from "../runtime.ts";
import type { VelocityFn } from "./sampler.ts";

/** One denoiser.onnx call in the worker pool: x (B, C, t, h, w), per-row flow times and labels
 * -> v of x's shape. Used alone (denoiserVelocity) and for shared calls (batcher.ts). */
export async function runDenoiser(
  rt: ModelRuntime,
  b: Bundle,
  x: Float32Array,
  dims: readonly number[],
  t: Float32Array,
  labels: BigInt64Array,
  signal?: AbortSignal,
  context?: BigInt64Array,
): Promise<Float32Array> {
  const batch = dims[0] as number;
  const values = x.length; // read before the call: the pool transfers the input buffers
  // A context-trained denoiser (denoiser_config.context) also takes how many leading latent
  // frames of each row of x are given (`context`, per row); label-only generation gives none.
  // Any other denoiser cannot be told: the sampler's "replace" mode never asks it to.
  const feeds: Feeds = {
    x: { dtype: "float32", dims: [...dims], data: x },
    t: { dtype: "float32", dims: [batch], data: t },
    label: { dtype: "int64", dims: [batch], data: labels },
  };
  if (b.manifest.denoiser_config?.context === true) {
    feeds.context = { dtype: "int64", dims: [batch], data: context ?? new BigInt64Array(batch) };
  } else if (context?.some((k) => k !== 0n)) {
    throw new PipelineError(
      "model_failed",
      `model "${b.name}"'s denoiser was not trained with context frames (manifest denoiser_config.context)`,
      500,
    );
  }
  const out = await rt.run(b, "denoiser", feeds, signal);
  const v = out.v?.data;
  if (!(v instanceof Float32Array) || v.length !== values) {
    throw new PipelineError("model_failed", 'the denoiser returned no "v" of the input shape', 500);
  }
  return v;
}

/** The denoiser in the worker pool as the sampler's velocity function. */
export function denoiserVelocity(rt: ModelRuntime, b: Bundle, signal?: AbortSignal): VelocityFn {
  return (x, dims, t, labels, context) => {
    const batch = dims[0] as number;
    const times = new Float32Array(batch).fill(t);
    return runDenoiser(rt, b, x.slice(), dims, times, labels.slice(), signal, context?.slice());
  };
}
