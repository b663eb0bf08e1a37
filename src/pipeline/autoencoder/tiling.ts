// Spatial tiling (docs/bundle.md "Tiling"): frames larger than one tile are encoded and decoded
// in overlapping tiles whose results are blended, so that a model call never holds more than one
// tile, whatever the frame size. The sizes come from the manifest (`tiling`), which the export
// computed from the autoencoder's receptive fields: the `margin` cells next to an inner tile edge
// (those that see that edge's padding) get weight 0, and the `blend` cells in the middle of each
// overlap are ramped linearly from one tile to the next. With the margin covering the receptive
// field, every weighted value is the untiled value, so the tiled result equals the untiled one up
// to float rounding (tests/node/native-size.test.ts).

import type { Manifest } from "../bundle.ts";

export interface Tiling {
  /** Tile side, latent cells. */
  tile: number;
  /** Cells of an inner tile edge that get weight 0 (cover the receptive field). */
  margin: number;
  /** Cells ramped between two tiles, in the middle of their overlap. */
  blend: number;
}

/**
 * The bundle's tiling, or null when its manifest has none (bundles exported before it was
 * written, and non-convolutional autoencoders): such a bundle encodes a frame of any size in one
 * piece, its memory growing with the frame's area.
 */
export function tilingOf(m: Manifest): Tiling | null {
  const t = m.tiling;
  return t ? { tile: t.tile_latents, margin: t.margin_latents, blend: t.blend_latents } : null;
}

/** [height, width] pairs the autoencoder was trained on; without the field, the resolution. */
export function trainedSizes(m: Manifest): number[][] {
  return m.trained_sizes ?? [[m.resolution, m.resolution]];
}

/** Tile starts along one axis of n cells: one tile when n fits, else evenly spread tiles of
 * `tile` cells whose overlaps are at least 2 * margin + blend. */
export function tileStarts(n: number, t: Tiling): number[] {
  if (n <= t.tile) return [0];
  const overlap = 2 * t.margin + t.blend;
  const k = Math.ceil((n - overlap) / (t.tile - overlap));
  const starts: number[] = [];
  for (let i = 0; i < k; i++) starts.push(Math.round((i * (n - t.tile)) / (k - 1)));
  return starts;
}

/**
 * The weight of each position of tile `i` (at `scale` positions per cell: 1 for latents, the
 * spatial factor for pixels): 0 in the margin next to a neighbour, a linear ramp across the blend
 * band in the middle of the overlap, 1 elsewhere.
 */
export function tileWeights(starts: number[], i: number, n: number, t: Tiling, scale: number) {
  const start = starts[i] as number;
  const len = Math.min(t.tile, n);
  const w = new Float32Array(len * scale).fill(1);
  const band = t.blend * scale;
  // The band of the seam between tiles a and b = a + 1 starts at this cell.
  const seam = (a: number) => {
    const b = starts[a + 1] as number;
    const overlap = (starts[a] as number) + len - b;
    return b + Math.floor((overlap - t.blend) / 2);
  };
  // Weight of the later tile of a seam at absolute position p (the earlier one gets 1 - it).
  const rise = (c: number, p: number) =>
    band === 0 ? (p >= c * scale ? 1 : 0) : Math.min(1, Math.max(0, (p - c * scale + 0.5) / band));
  for (let q = 0; q < w.length; q++) {
    const p = start * scale + q;
    let v = 1;
    if (i > 0) v *= rise(seam(i - 1), p);
    if (i + 1 < starts.length) v *= 1 - rise(seam(i), p);
    w[q] = v;
  }
  return w;
}

/** A tile: its cell ranges and its weights at one scale. */
export interface Tile {
  y: number;
  x: number;
  h: number;
  w: number;
  wy: Float32Array;
  wx: Float32Array;
}

/** Every tile of an h x w cell grid, row by row, with weights at `scale` positions per cell. */
export function tilesOf(h: number, w: number, t: Tiling | null, scale: number): Tile[] {
  if (t === null) {
    return [
      {
        y: 0,
        x: 0,
        h,
        w,
        wy: new Float32Array(h * scale).fill(1),
        wx: new Float32Array(w * scale).fill(1),
      },
    ];
  }
  const ys = tileStarts(h, t);
  const xs = tileStarts(w, t);
  const tiles: Tile[] = [];
  ys.forEach((y, i) => {
    const wy = tileWeights(ys, i, h, t, scale);
    xs.forEach((x, j) => {
      const wx = tileWeights(xs, j, w, t, scale);
      tiles.push({ y, x, h: Math.min(t.tile, h), w: Math.min(t.tile, w), wy, wx });
    });
  });
  return tiles;
}

/**
 * Weighted sums of tiles into a (C, T, H, W) canvas, normalised by the summed weights at the end
 * (the weights of the tiles over a position need not sum to 1 where three tiles meet).
 */
export class BlendCanvas {
  readonly data: Float32Array;
  readonly #weight: Float32Array;

  constructor(
    readonly channels: number,
    readonly frames: number,
    readonly height: number,
    readonly width: number,
  ) {
    this.data = new Float32Array(channels * frames * height * width);
    this.#weight = new Float32Array(height * width);
  }

  /** Adds a (1, C, T, th, tw) tile whose top-left position is (y0, x0), weights wy x wx. */
  add(tile: Float32Array, y0: number, x0: number, wy: Float32Array, wx: Float32Array): void {
    const th = wy.length;
    const tw = wx.length;
    const { height: H, width: W } = this;
    for (let y = 0; y < th; y++) {
      for (let x = 0; x < tw; x++) {
        const at = (y0 + y) * W + x0 + x;
        this.#weight[at] = (this.#weight[at] as number) + (wy[y] as number) * (wx[x] as number);
      }
    }
    for (let ct = 0; ct < this.channels * this.frames; ct++) {
      const src = ct * th * tw;
      const dst = ct * H * W;
      for (let y = 0; y < th; y++) {
        const wyy = wy[y] as number;
        if (wyy === 0) continue;
        const row = dst + (y0 + y) * W + x0;
        const from = src + y * tw;
        for (let x = 0; x < tw; x++) {
          const v = wyy * (wx[x] as number);
          if (v !== 0) {
            this.data[row + x] = (this.data[row + x] as number) + v * (tile[from + x] as number);
          }
        }
      }
    }
  }

  /**
   * Hands out the first `rows` rows, blended (the values of every (channel, frame) row through
   * `take`), then moves the rest up by as many rows and clears the rows freed at the bottom: a
   * canvas used as a band of rows that slides down a frame taller than it.
   */
  takeRows(rows: number, take: (ct: number, y: number, values: Float32Array) => void): void {
    const { height: H, width: W } = this;
    const row = new Float32Array(W);
    for (let ct = 0; ct < this.channels * this.frames; ct++) {
      for (let y = 0; y < rows; y++) {
        const at = (ct * H + y) * W;
        for (let x = 0; x < W; x++) {
          row[x] = (this.data[at + x] as number) / (this.#weight[y * W + x] as number);
        }
        take(ct, y, row);
      }
      const plane = this.data.subarray(ct * H * W, (ct + 1) * H * W);
      plane.copyWithin(0, rows * W);
      plane.fill(0, (H - rows) * W);
    }
    this.#weight.copyWithin(0, rows * W);
    this.#weight.fill(0, (H - rows) * W);
  }

  /** The blended (C, T, H, W) values (the canvas itself, divided in place). */
  finish(): Float32Array {
    const hw = this.height * this.width;
    for (let ct = 0; ct < this.channels * this.frames; ct++) {
      for (let p = 0; p < hw; p++) {
        this.data[ct * hw + p] = (this.data[ct * hw + p] as number) / (this.#weight[p] as number);
      }
    }
    return this.data;
  }
}

/** Frames (rgb24, height x width) cut to the pixel rectangle of a tile, as a (1, 3, T, th, tw)
 * video in [-1, 1] (the normalisation of tensor.ts writeFrames). */
export function tileVideo(
  frames: readonly Uint8Array[],
  width: number,
  y0: number,
  x0: number,
  th: number,
  tw: number,
): Float32Array {
  const t = frames.length;
  const out = new Float32Array(3 * t * th * tw);
  frames.forEach((frame, i) => {
    for (let c = 0; c < 3; c++) {
      const plane = (c * t + i) * th * tw;
      for (let y = 0; y < th; y++) {
        const src = ((y0 + y) * width + x0) * 3 + c;
        const dst = plane + y * tw;
        for (let x = 0; x < tw; x++) out[dst + x] = (frame[src + 3 * x] as number) / 127.5 - 1;
      }
    }
  });
  return out;
}

/** A (1, C, T, h, w) tensor's cells [y0, y0 + th) x [x0, x0 + tw), as (1, C, T, th, tw). */
export function cropCells(
  data: Float32Array,
  ct: number,
  h: number,
  w: number,
  y0: number,
  x0: number,
  th: number,
  tw: number,
): Float32Array {
  const out = new Float32Array(ct * th * tw);
  for (let k = 0; k < ct; k++) {
    for (let y = 0; y < th; y++) {
      const src = k * h * w + (y0 + y) * w + x0;
      out.set(data.subarray(src, src + tw), (k * th + y) * tw);
    }
  }
  return out;
}

/** The sizes an encoding or reconstruction can run at: the bundle's square crop (as trained) or
 * the video's own frame, rounded to the spatial factor. */
export const FRAME_SIZES = ["bundle", "native"] as const;
export type FrameSize = (typeof FRAME_SIZES)[number];

/** The frame the model sees: width and height. */
export interface FrameDims {
  width: number;
  height: number;
}

/** The video's own width and height, each rounded to the nearest multiple of the bundle's
 * spatial factor (at least one factor): the whole picture, aspect kept to within half a factor a
 * side, no crop. */
export function nativeDims(m: Manifest, width: number, height: number): FrameDims {
  const f = m.spatial_factor;
  const round = (n: number) => Math.max(1, Math.round(n / f)) * f;
  return { width: round(width), height: round(height) };
}

/** The frame a size gives for a video of this width and height. */
export function frameDims(m: Manifest, size: FrameSize, width: number, height: number): FrameDims {
  return size === "native"
    ? nativeDims(m, width, height)
    : { width: m.resolution, height: m.resolution };
}
