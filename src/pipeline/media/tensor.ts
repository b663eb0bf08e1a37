// Frames <-> model tensors, and the image metrics, all on flat typed arrays.
// Frames are rgb24 (H, W, 3) uint8; videos are float32 (B, 3, T, H, W) in [-1, 1], C order;
// latents are float32 (B, C, t, h, w).

import { float32ToHalfBits, fromHalfBits, halfBitsToFloat32, toHalfBits } from "../onnx/float16.ts";

/**
 * Writes frames into batch element `b` of a (B, 3, T, H, W) video in [-1, 1]:
 * x = v / 127.5 - 1, the same normalisation as training (diffusable.data).
 */
export function writeFrames(
  video: Float32Array,
  b: number,
  frames: readonly Uint8Array[],
  height: number,
  width: number,
): void {
  const hw = height * width;
  const t = frames.length;
  const base = b * 3 * t * hw;
  frames.forEach((frame, i) => {
    for (let c = 0; c < 3; c++) {
      const plane = base + (c * t + i) * hw;
      for (let p = 0; p < hw; p++) video[plane + p] = (frame[p * 3 + c] as number) / 127.5 - 1;
    }
  });
}

/** A (1, 3, T, H, W) video of these frames. */
export function framesToVideo(
  frames: readonly Uint8Array[],
  height: number,
  width: number,
): Float32Array {
  const video = new Float32Array(3 * frames.length * height * width);
  writeFrames(video, 0, frames, height, width);
  return video;
}

/** Batch element `b` of a (B, 3, T, H, W) video in [-1, 1] as rgb24 frames (rounded, clamped). */
export function videoToFrames(video: Float32Array, dims: readonly number[], b = 0): Uint8Array[] {
  const [, channels, t = 0, height = 0, width = 0] = dims;
  if (dims.length !== 5 || channels !== 3) {
    throw new Error(`expected a (B, 3, T, H, W) video, got [${dims.join(",")}]`);
  }
  const hw = height * width;
  const base = b * 3 * t * hw;
  const frames: Uint8Array[] = [];
  for (let i = 0; i < t; i++) {
    const frame = new Uint8Array(hw * 3);
    for (let c = 0; c < 3; c++) {
      const plane = base + (c * t + i) * hw;
      for (let p = 0; p < hw; p++) {
        const v = Math.round(((video[plane + p] as number) + 1) * 127.5);
        frame[p * 3 + c] = Math.min(255, Math.max(0, v));
      }
    }
    frames.push(frame);
  }
  return frames;
}

/**
 * Concatenates latents along time: parts of shape (1, C, t_i, h, w) -> (1, C, sum t_i, h, w).
 * `hw` is h * w.
 */
export function concatTime(
  parts: readonly Float32Array[],
  channels: number,
  hw: number,
): Float32Array {
  const times = parts.map((p) => p.length / (channels * hw));
  const total = times.reduce((a, b) => a + b, 0);
  const out = new Float32Array(channels * total * hw);
  for (let c = 0; c < channels; c++) {
    let offset = c * total * hw;
    parts.forEach((part, i) => {
      const n = (times[i] as number) * hw;
      out.set(part.subarray(c * n, (c + 1) * n), offset);
      offset += n;
    });
  }
  return out;
}

/** Rounds every value to the nearest float16 (kept as float32, the npy-file.ts convention). */
export function roundToHalf(values: Float32Array): Float32Array {
  return halfBitsToFloat32(float32ToHalfBits(values));
}

/** roundToHalf in place: no second copy of a large array. */
export function roundToHalfInPlace(values: Float32Array): Float32Array {
  for (let i = 0; i < values.length; i++) {
    values[i] = fromHalfBits(toHalfBits(values[i] as number));
  }
  return values;
}

/**
 * Latents (1, C, t, h, w) gathered along time as they come, in one buffer laid out as the result
 * (channel-major): each part's channels are copied into place and the part can be freed, so a
 * long video holds one copy of its latents (not thousands of small buffers and then their
 * concatenation). `expected` latent frames are allocated up front (the probe's estimate); the
 * buffer doubles when a longer video gives more.
 */
export class TimeAccumulator {
  #data: Float32Array;
  #capacity: number;
  #frames = 0;
  constructor(
    readonly channels: number,
    readonly hw: number,
    expected: number,
  ) {
    this.#capacity = Math.max(1, Math.ceil(expected));
    this.#data = new Float32Array(channels * this.#capacity * hw);
  }

  get frames(): number {
    return this.#frames;
  }

  /** Appends a part of shape (1, C, t, h, w). */
  push(part: Float32Array): void {
    const t = part.length / (this.channels * this.hw);
    if (this.#frames + t > this.#capacity)
      this.#grow(Math.max(2 * this.#capacity, this.#frames + t));
    const n = t * this.hw;
    for (let c = 0; c < this.channels; c++) {
      this.#data.set(
        part.subarray(c * n, (c + 1) * n),
        (c * this.#capacity + this.#frames) * this.hw,
      );
    }
    this.#frames += t;
  }

  #grow(capacity: number): void {
    const next = new Float32Array(this.channels * capacity * this.hw);
    const n = this.#frames * this.hw;
    for (let c = 0; c < this.channels; c++) {
      const from = c * this.#capacity * this.hw;
      next.set(this.#data.subarray(from, from + n), c * capacity * this.hw);
    }
    this.#data = next;
    this.#capacity = capacity;
  }

  /** The latents (1, C, frames, h, w): the same buffer, compacted in place when over-allocated. */
  finish(): Float32Array {
    const n = this.#frames * this.hw;
    if (this.#frames < this.#capacity) {
      // Channel c moves from c * capacity to c * frames (never forward): copyWithin is safe.
      for (let c = 1; c < this.channels; c++) {
        const from = c * this.#capacity * this.hw;
        this.#data.copyWithin(c * n, from, from + n);
      }
    }
    return this.#data.subarray(0, this.channels * n);
  }
}

/**
 * PSNR in dB of two rgb24 frames on the [0, 1] scale; like diffusable.evaluation.metrics.psnr, the MSE is
 * floored at 1e-10, so identical frames give 100 dB (a finite number, safe in JSON).
 */
export function psnr(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) throw new Error(`psnr: ${a.length} vs ${b.length} values`);
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = ((a[i] as number) - (b[i] as number)) / 255;
    sum += d * d;
  }
  return -10 * Math.log10(Math.max(sum / a.length, 1e-10));
}

function gaussianWindow(size: number, sigma = 1.5): Float64Array {
  const g = new Float64Array(size);
  let total = 0;
  for (let i = 0; i < size; i++) {
    const x = i - (size - 1) / 2;
    g[i] = Math.exp(-(x * x) / (2 * sigma * sigma));
    total += g[i] as number;
  }
  for (let i = 0; i < size; i++) g[i] = (g[i] as number) / total;
  return g;
}

/** Separable "valid" filtering of a (height, width) plane with a 1-D kernel in both directions. */
function filterValid(plane: Float64Array, height: number, width: number, k: Float64Array) {
  const n = k.length;
  const ow = width - n + 1;
  const oh = height - n + 1;
  const rows = new Float64Array(height * ow);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < ow; x++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += (k[i] as number) * (plane[y * width + x + i] as number);
      rows[y * ow + x] = s;
    }
  }
  const out = new Float64Array(oh * ow);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += (k[i] as number) * (rows[(y + i) * ow + x] as number);
      out[y * ow + x] = s;
    }
  }
  return out;
}

/**
 * Mean SSIM of two rgb24 frames, as diffusable.evaluation.metrics.ssim computes it: Wang et al. 2004,
 * 11x11 Gaussian window (sigma 1.5; smaller on tiny frames), per channel, valid windows only,
 * on the [0, 1] scale.
 */
export function ssim(a: Uint8Array, b: Uint8Array, height: number, width: number): number {
  if (a.length !== height * width * 3 || b.length !== a.length) {
    throw new Error(`ssim: frames must be ${height}x${width}x3`);
  }
  const win = gaussianWindow(Math.min(11, height, width));
  const c1 = 0.01 ** 2;
  const c2 = 0.03 ** 2;
  const hw = height * width;
  let total = 0;
  let count = 0;
  for (let c = 0; c < 3; c++) {
    const x = new Float64Array(hw);
    const y = new Float64Array(hw);
    for (let p = 0; p < hw; p++) {
      x[p] = (a[p * 3 + c] as number) / 255;
      y[p] = (b[p * 3 + c] as number) / 255;
    }
    const xx = x.map((v) => v * v);
    const yy = y.map((v) => v * v);
    const xy = x.map((v, i) => v * (y[i] as number));
    const [mx, my, sxx, syy, sxy] = [x, y, xx, yy, xy].map((p) =>
      filterValid(p, height, width, win),
    ) as [Float64Array, Float64Array, Float64Array, Float64Array, Float64Array];
    for (let i = 0; i < mx.length; i++) {
      const ux = mx[i] as number;
      const uy = my[i] as number;
      const vx = (sxx[i] as number) - ux * ux;
      const vy = (syy[i] as number) - uy * uy;
      const cov = (sxy[i] as number) - ux * uy;
      total += ((2 * ux * uy + c1) * (2 * cov + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
      count++;
    }
  }
  return total / count;
}
