// Seeded Gaussian noise (docs/sampler.md, "Noise"): the same seed gives the same float32 array on
// any machine and any JavaScript engine. Only 32-bit integer operations (Math.imul, >>>, ^) and
// IEEE-754 functions whose results do not depend on the engine enter the bits: the uniforms are
// exact dyadic rationals and the Gaussian transform rounds every intermediate with Math.fround.
//
// PRNG: xoshiro128** (Blackman & Vigna) on four uint32 words, seeded by splitmix32 from the seed
// split into its low and high 32 bits. Gaussian: Box–Muller with both outputs used.

/** splitmix32 step: returns [next state, output]; all arithmetic on uint32. */
function splitmix32(state: number): [number, number] {
  const s = (state + 0x9e37_79b9) >>> 0;
  let z = s;
  z = Math.imul(z ^ (z >>> 16), 0x85eb_ca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2_ae35) >>> 0;
  z = (z ^ (z >>> 16)) >>> 0;
  return [s, z];
}

const rotl = (x: number, k: number) => ((x << k) | (x >>> (32 - k))) >>> 0;

/** xoshiro128**: a uint32 stream from a 128-bit state. */
export class Xoshiro128 {
  #s: Uint32Array;

  /** seed: a non-negative safe integer (0 .. 2^53 - 1). */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new RangeError(`seed must be an integer in 0 .. 2^53 - 1, got ${seed}`);
    }
    const lo = (seed % 2 ** 32) >>> 0;
    const hi = Math.floor(seed / 2 ** 32) >>> 0;
    // Seed splitmix32 with lo, mix hi into its state halfway, take four words.
    let state = lo;
    const words = new Uint32Array(4);
    for (let i = 0; i < 4; i++) {
      if (i === 2) state = (state ^ hi) >>> 0;
      const [next, out] = splitmix32(state);
      state = next;
      words[i] = out;
    }
    if (words.every((w) => w === 0)) words[0] = 1; // never all zero
    this.#s = words;
  }

  /** The next uint32. */
  next(): number {
    const s = this.#s;
    const result = Math.imul(rotl(Math.imul(s[1] as number, 5) >>> 0, 7), 9) >>> 0;
    const t = ((s[1] as number) << 9) >>> 0;
    s[2] = (s[2] as number) ^ (s[0] as number);
    s[3] = (s[3] as number) ^ (s[1] as number);
    s[1] = (s[1] as number) ^ (s[2] as number);
    s[0] = (s[0] as number) ^ (s[3] as number);
    s[2] = (s[2] as number) ^ t;
    s[3] = rotl(s[3] as number, 11);
    return result;
  }

  /** A uniform in (0, 1]: (top 24 bits + 1) / 2^24, exact in float32. */
  uniform(): number {
    return ((this.next() >>> 8) + 1) / 16_777_216;
  }
}

// Math.log, Math.cos and Math.sin: ECMAScript does not require them correctly rounded, but V8
// (Node) computes them with its own fdlibm port (src/base/ieee754.cc), not the platform's libm,
// so a given Node version gives the same bits on every OS and CPU. Another engine could differ in
// the last float64 bit, which survives the float32 rounding only rarely (about 2^-29 per value).

/**
 * `count` float32 samples of N(0, 1) for `seed`. Box–Muller on pairs of uniforms u1, u2 in (0, 1]:
 *   r = fround(sqrt(fround(-2 * fround(log(u1))))), a = fround(2π * u2) (2π as float32),
 *   z0 = fround(r * fround(cos(a))), z1 = fround(r * fround(sin(a)));
 * values are written z0, z1, z0, z1, ... (an odd count drops the last z1).
 */
export function gaussianNoise(seed: number, count: number): Float32Array {
  if (!Number.isInteger(count) || count < 0) {
    throw new RangeError(`count must be a non-negative integer, got ${count}`);
  }
  const rng = new Xoshiro128(seed);
  const out = new Float32Array(count);
  const twoPi = Math.fround(2 * Math.PI);
  for (let i = 0; i < count; i += 2) {
    const u1 = rng.uniform();
    const u2 = rng.uniform();
    const r = Math.fround(Math.sqrt(Math.fround(-2 * Math.fround(Math.log(u1)))));
    const a = Math.fround(twoPi * u2);
    out[i] = Math.fround(r * Math.fround(Math.cos(a)));
    if (i + 1 < count) out[i + 1] = Math.fround(r * Math.fround(Math.sin(a)));
  }
  return out;
}
