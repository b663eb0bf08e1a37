// What the autoencoder's three paths (encode.ts, decode.ts, reconstruct.ts) share: option checks,
// tensors in and out of the worker pool, and frame grouping.

import { decodeFrames } from "../media/video.ts";
import type { TensorValue } from "../onnx/onnx-session.ts";
import { PipelineError } from "../pipeline-error.ts";
import type { FrameDims, FrameSize } from "./tiling.ts";

/** Limit for decoding a whole input file, model time included (1 hour). */
export const DEFAULT_TIMEOUT_MS = 3_600_000;

/** Rejects a frame rate outside (0, 240]. */
export function checkFps(fps: number): void {
  if (!(Number.isFinite(fps) && fps > 0 && fps <= 240)) {
    throw new PipelineError("bad_option", `fps must be in (0, 240], got ${fps}`, 400);
  }
}

/** A float32 tensor of these dims. */
export function video(data: Float32Array, dims: number[]): TensorValue {
  return { dtype: "float32", dims, data };
}

/** The named output of a model call; model_failed when it is missing. */
export function tensorOf(outputs: Record<string, TensorValue>, name: string): TensorValue {
  const t = outputs[name];
  if (t === undefined) {
    throw new PipelineError("model_failed", `the model returned no "${name}" output`, 500);
  }
  return t;
}

/** The error for an input that gives fewer frames than a mode needs. */
export function tooShort(
  frames: number,
  fps: number,
  need: number,
  mode: "clip" | "whole",
): PipelineError {
  return new PipelineError(
    "too_short",
    `the video gives ${frames} frames at ${fps} fps; ${mode} mode needs at least ${need}.`,
    422,
  );
}

/** Groups a frame stream into lists of n frames; a trailing partial group is dropped. */
export async function* groups<T>(items: AsyncIterable<T>, n: number): AsyncGenerator<T[]> {
  let group: T[] = [];
  for await (const item of items) {
    group.push(item);
    if (group.length === n) {
      yield group;
      group = [];
    }
  }
}

/**
 * The input's frames as the model takes them (`size` bundle: the bundle's square crop of
 * `side` pixels; native: `dims`, the video's own frame), counted as they stream: `read()` is the
 * real count once they stop, for the too_short message.
 */
export function modelFrames(
  path: string,
  opts: {
    fps: number;
    side: number;
    size: FrameSize;
    dims: FrameDims;
    timeoutMs?: number;
    signal?: AbortSignal;
  },
): { frames: AsyncGenerator<Uint8Array>; read: () => number } {
  const source = decodeFrames(path, {
    fps: opts.fps,
    size: opts.side,
    ...(opts.size === "native" ? { frame: opts.dims } : {}),
    timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  let read = 0;
  async function* counted() {
    for await (const frame of source) {
      read++;
      yield frame;
    }
  }
  return { frames: counted(), read: () => read };
}
