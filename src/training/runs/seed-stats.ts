// Statistics over seeds for the admin page (pure, no I/O): per arm (the autoencoder variant of a
// diffusion run) and eval step, the mean, sample sd, min and max over the arm's seeds; the final
// values; the steps each seed takes to reach the baseline arm's final mean; and the relative
// difference of two arms' final values on the log scale with a Welch 95% interval. The same
// definitions as the Python module diffusable.experiments.seed_stats (tests/node/run-stats.test.ts runs both
// on one fixture folder and compares them).

export interface StepValue {
  step: number;
  value: number;
}

export type Better = "lower" | "higher";

export interface MetricSpec {
  name: string;
  better: Better;
}

/** The diffusion metrics compared over seeds ("eval/<name>"), in display order. */
export const SEED_METRICS: readonly MetricSpec[] = [
  { name: "fd_cls3d", better: "lower" },
  { name: "fd_rand3d", better: "lower" },
  { name: "fvd_i3d", better: "lower" },
  { name: "lfd", better: "lower" },
  { name: "lfd_t", better: "lower" },
  { name: "class_score", better: "higher" },
  { name: "val_loss", better: "lower" },
  { name: "grid_ratio", better: "lower" },
];

/** The arms, in display order; the first is the reference of steps_to_reach. */
export const ARMS = ["baseline", "se", "se-spatial"] as const;

/** The comparisons [a, b] ("a vs b") made for every metric both arms have. */
export const COMPARISONS: readonly (readonly [string, string])[] = [
  ["se", "baseline"],
  ["se", "se-spatial"],
  ["se-spatial", "baseline"],
];

// ---------------------------------------------------------------- elementary statistics

export function mean(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

/** Sample variance (ddof = 1); 0 for a single value. */
export function sampleVariance(xs: readonly number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  let s = 0;
  for (const x of xs) s += (x - m) * (x - m);
  return s / (xs.length - 1);
}

export const sampleSd = (xs: readonly number[]) => Math.sqrt(sampleVariance(xs));

// ---------------------------------------------------------------- Student's t quantile

/** ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms; ~1e-15 relative). */
export function lnGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
    -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6,
    1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - lnGamma(1 - x);
  const z = x - 1;
  let a = c[0] as number;
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += (c[i] as number) / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** The continued fraction of the incomplete beta function (modified Lentz). */
function betaContinuedFraction(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 10_000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-16) break;
  }
  return h;
}

/** The regularized incomplete beta function I_x(a, b). */
export function regularizedBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const lnFront = lnGamma(a + b) - lnGamma(a) - lnGamma(b) + a * Math.log(x) + b * Math.log1p(-x);
  const front = Math.exp(lnFront);
  // The continued fraction converges fast for x < (a + 1) / (a + b + 2); else use the symmetry.
  if (x < (a + 1) / (a + b + 2)) return (front * betaContinuedFraction(x, a, b)) / a;
  return 1 - (front * betaContinuedFraction(1 - x, b, a)) / b;
}

/** P(T <= t) for Student's t with df > 0 degrees of freedom (df need not be an integer). */
export function studentTCdf(t: number, df: number): number {
  if (t === 0) return 0.5;
  const tail = 0.5 * regularizedBeta(df / (df + t * t), df / 2, 0.5);
  return t > 0 ? 1 - tail : tail;
}

/** The p-quantile of Student's t with df > 0 (df need not be an integer): bisection on the cdf
 * to the last bit, then Newton steps are not needed. */
export function studentTQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1) || !(df > 0)) return Number.NaN;
  if (p === 0.5) return 0;
  if (p < 0.5) return -studentTQuantile(1 - p, df);
  // Work with the upper tail, 1 - p, which keeps its precision for p near 1.
  const q = 1 - p;
  const upper = (t: number) => 0.5 * regularizedBeta(df / (df + t * t), df / 2, 0.5);
  let lo = 0;
  let hi = 1;
  while (upper(hi) > q) {
    lo = hi;
    hi *= 2;
    if (hi > 1e300) return Number.POSITIVE_INFINITY;
  }
  for (let i = 0; i < 200; i++) {
    const mid = 0.5 * (lo + hi);
    if (mid === lo || mid === hi) break;
    if (upper(mid) > q) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

// ---------------------------------------------------------------- arms over seeds

/** One seed of an arm: its run and its metric histories by metric name. */
export interface SeedSeries {
  seed: number | null;
  runId: string;
  metrics: Record<string, readonly StepValue[]>;
}

export interface StepsToReach {
  /** The baseline arm's final mean. */
  target: number;
  /** The arm's seeds. */
  seeds: number;
  /** Seeds whose curve reaches the target at one of its eval steps. */
  reached: number;
  /** Mean and sd (ddof 1; 0 with one seed) of those seeds' first steps; null when none. */
  mean: number | null;
  sd: number | null;
}

export interface MetricStats {
  better: Better;
  /** The eval steps every seed of the arm has, ascending. */
  steps: number[];
  mean: number[];
  sd: number[];
  min: number[];
  max: number[];
  /** At the last common step; values in the order of the arm's seeds. */
  final: { step: number; mean: number; sd: number; n: number; values: number[] };
  /** Null when the baseline arm lacks the metric. */
  steps_to_reach: StepsToReach | null;
}

export interface ArmStats {
  seeds: (number | null)[];
  runs: string[];
  metrics: Record<string, MetricStats>;
}

export interface RelDiff {
  /** exp(mean ln a - mean ln b) - 1; null when a value is not positive (no log scale). */
  rel: number | null;
  /** The 95% interval of rel; null with fewer than two seeds on a side. */
  lo: number | null;
  hi: number | null;
  /** Welch–Satterthwaite degrees of freedom; null without an interval or when se = 0. */
  df: number | null;
}

export interface ArmComparison extends RelDiff {
  a: string;
  b: string;
  metric: string;
  better: Better;
  na: number;
  nb: number;
  /** The final values (a's, then b's), for the one-seed case. */
  values: { a: number[]; b: number[] };
  conclusion: string;
  /** The same comparison paired by seed (pairedLogRelDiff), as diffusable.experiments.seed_stats. */
  paired: PairedDiff & { conclusion: string };
}

export interface PairedDiff extends RelDiff {
  /** Seeds that both arms have. */
  n: number;
}

export interface SeedStats {
  arms: Record<string, ArmStats>;
  comparisons: ArmComparison[];
}

/** Sorted by step, non-finite values dropped; a later point at the same step wins. */
function clean(series: readonly StepValue[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const p of series) {
    if (Number.isFinite(p.step) && Number.isFinite(p.value)) out.set(p.step, p.value);
  }
  return new Map([...out.entries()].sort((x, y) => x[0] - y[0]));
}

/** Seeds ascending (a run without a seed first, then by run id): the order of `values`. */
export function sortSeeds(seeds: readonly SeedSeries[]): SeedSeries[] {
  return [...seeds].sort((x, y) => {
    const sx = x.seed ?? -1;
    const sy = y.seed ?? -1;
    if (sx !== sy) return sx - sy;
    return x.runId < y.runId ? -1 : x.runId > y.runId ? 1 : 0;
  });
}

/** The arm's statistics of one metric; null when a seed lacks it or no step is common. */
export function metricStats(
  seeds: readonly SeedSeries[],
  spec: MetricSpec,
): Omit<MetricStats, "steps_to_reach"> | null {
  if (seeds.length === 0) return null;
  const maps = seeds.map((s) => clean(s.metrics[spec.name] ?? []));
  if (maps.some((m) => m.size === 0)) return null;
  const steps = [...(maps[0] as Map<number, number>).keys()].filter((step) =>
    maps.every((m) => m.has(step)),
  );
  if (steps.length === 0) return null;
  const at = (step: number) => maps.map((m) => m.get(step) as number);
  const out = {
    better: spec.better,
    steps,
    mean: [] as number[],
    sd: [] as number[],
    min: [] as number[],
    max: [] as number[],
  };
  for (const step of steps) {
    const v = at(step);
    out.mean.push(mean(v));
    out.sd.push(sampleSd(v));
    out.min.push(Math.min(...v));
    out.max.push(Math.max(...v));
  }
  const last = steps.at(-1) as number;
  const values = at(last);
  return {
    ...out,
    final: { step: last, mean: mean(values), sd: sampleSd(values), n: values.length, values },
  };
}

/** For each seed, the first of its eval steps whose value reaches the target (<= for a
 * lower-better metric, >= for a higher-better one). */
export function stepsToReach(
  seeds: readonly SeedSeries[],
  spec: MetricSpec,
  target: number,
): StepsToReach {
  const firsts: number[] = [];
  for (const s of seeds) {
    const hit = [...clean(s.metrics[spec.name] ?? []).entries()].find(([, v]) =>
      spec.better === "lower" ? v <= target : v >= target,
    );
    if (hit !== undefined) firsts.push(hit[0]);
  }
  return {
    target,
    seeds: seeds.length,
    reached: firsts.length,
    mean: firsts.length ? mean(firsts) : null,
    sd: firsts.length ? sampleSd(firsts) : null,
  };
}

/** The relative difference of a's values over b's on the log scale, with a Welch 95% interval. */
export function logRelDiff(a: readonly number[], b: readonly number[]): RelDiff | null {
  if (a.length === 0 || b.length === 0) return null;
  if ([...a, ...b].some((v) => !(v > 0) || !Number.isFinite(v))) {
    return { rel: null, lo: null, hi: null, df: null };
  }
  const la = a.map(Math.log);
  const lb = b.map(Math.log);
  const d = mean(la) - mean(lb);
  const rel = Math.exp(d) - 1;
  if (a.length < 2 || b.length < 2) return { rel, lo: null, hi: null, df: null };
  const wa = sampleVariance(la) / la.length;
  const wb = sampleVariance(lb) / lb.length;
  const se = Math.sqrt(wa + wb);
  if (se === 0) return { rel, lo: rel, hi: rel, df: null };
  const df = se ** 4 / (wa ** 2 / (la.length - 1) + wb ** 2 / (lb.length - 1));
  const t = studentTQuantile(0.975, df);
  return { rel, lo: Math.exp(d - t * se) - 1, hi: Math.exp(d + t * se) - 1, df };
}

/** a vs b paired by seed: d = ln a - ln b for each seed both have, with a t 95% interval on
 * mean(d) (n - 1 degrees of freedom). Seed k of every arm shares its initialisation and batch
 * order, so this removes the spread between seeds that the Welch interval carries. */
export function pairedLogRelDiff(
  a: ReadonlyMap<number, number>,
  b: ReadonlyMap<number, number>,
): PairedDiff {
  const seeds = [...a.keys()].filter((k) => b.has(k)).sort((x, y) => x - y);
  const out: PairedDiff = { rel: null, lo: null, hi: null, df: null, n: seeds.length };
  const pairs = seeds.map((k) => [a.get(k) as number, b.get(k) as number] as const);
  if (pairs.length === 0 || pairs.some(([x, y]) => !(x > 0 && y > 0))) return out;
  const d = pairs.map(([x, y]) => Math.log(x) - Math.log(y));
  const m = mean(d);
  out.rel = Math.exp(m) - 1;
  if (d.length < 2) return out;
  const se = Math.sqrt(sampleVariance(d) / d.length);
  const t = studentTQuantile(0.975, d.length - 1);
  return { ...out, lo: Math.exp(m - t * se) - 1, hi: Math.exp(m + t * se) - 1, df: d.length - 1 };
}

/** 100·v with one decimal, as Python's f"{100 * v:.1f}" (which keeps the sign of -0.0). */
const pct1 = (v: number) => (Object.is(100 * v, -0) ? "-0.0" : (100 * v).toFixed(1));

/** The conclusion of arm a vs arm b from the interval alone: which way it excludes 0, else a
 * tie (never a win); the same sentences as diffusable.experiments.seed_stats. */
export function conclude(a: string, diff: RelDiff | null): string {
  if (diff === null || diff.rel === null) return "a value <= 0: no relative difference";
  if (diff.lo === null || diff.hi === null) return "one seed per arm: no interval, no conclusion";
  const { rel, lo, hi } = diff;
  if (hi < 0) return `${a} lower by ${pct1(-rel)}% [${pct1(-hi)}%, ${pct1(-lo)}%]`;
  if (lo > 0) return `${a} higher by ${pct1(rel)}% [${pct1(lo)}%, ${pct1(hi)}%]`;
  return `no difference detectable at this budget (rel ${pct1(rel)}% [${pct1(lo)}%, ${pct1(hi)}%])`;
}

/** Whether a conclusion says that arm a is better (a win), worse, or neither. */
export function verdict(c: Pick<ArmComparison, "lo" | "hi" | "better">): "a" | "b" | null {
  if (c.lo === null || c.hi === null) return null;
  if (c.hi < 0) return c.better === "lower" ? "a" : "b";
  if (c.lo > 0) return c.better === "higher" ? "a" : "b";
  return null;
}

/** Every arm's statistics and the comparisons, for the metrics given (all that are present). */
export function seedStats(
  arms: Record<string, readonly SeedSeries[]>,
  metrics: readonly MetricSpec[] = SEED_METRICS,
  comparisons: readonly (readonly [string, string])[] = COMPARISONS,
  reference = "baseline",
): SeedStats {
  const out: Record<string, ArmStats> = {};
  const partial: Record<string, Record<string, Omit<MetricStats, "steps_to_reach">>> = {};
  for (const [arm, list] of Object.entries(arms)) {
    const seeds = sortSeeds(list);
    partial[arm] = {};
    for (const spec of metrics) {
      const s = metricStats(seeds, spec);
      if (s) (partial[arm] as Record<string, unknown>)[spec.name] = s;
    }
  }
  for (const [arm, list] of Object.entries(arms)) {
    const seeds = sortSeeds(list);
    const metricsOut: Record<string, MetricStats> = {};
    for (const spec of metrics) {
      const s = partial[arm]?.[spec.name];
      if (!s) continue;
      const ref = partial[reference]?.[spec.name];
      metricsOut[spec.name] = {
        ...s,
        steps_to_reach: ref ? stepsToReach(seeds, spec, ref.final.mean) : null,
      };
    }
    out[arm] = {
      seeds: seeds.map((s) => s.seed),
      runs: seeds.map((s) => s.runId),
      metrics: metricsOut,
    };
  }
  /** An arm's final values keyed by seed (runs without a seed are left out of pairing). */
  const bySeed = (arm: string, vs: readonly number[]) =>
    new Map(
      (out[arm]?.seeds ?? [])
        .map((seed, i) => [seed, vs[i]] as const)
        .filter((e): e is readonly [number, number] => typeof e[0] === "number"),
    );
  const cmp: ArmComparison[] = [];
  for (const spec of metrics) {
    for (const [a, b] of comparisons) {
      const fa = out[a]?.metrics[spec.name]?.final;
      const fb = out[b]?.metrics[spec.name]?.final;
      if (!fa || !fb) continue;
      const diff = logRelDiff(fa.values, fb.values);
      const values = { a: fa.values, b: fb.values };
      const paired = pairedLogRelDiff(bySeed(a, fa.values), bySeed(b, fb.values));
      cmp.push({
        a,
        b,
        metric: spec.name,
        better: spec.better,
        na: fa.n,
        nb: fb.n,
        rel: diff?.rel ?? null,
        lo: diff?.lo ?? null,
        hi: diff?.hi ?? null,
        df: diff?.df ?? null,
        values,
        conclusion: conclude(a, diff),
        paired: { ...paired, conclusion: conclude(a, paired) },
      });
    }
  }
  return { arms: out, comparisons: cmp };
}

const num = (v: number) => (Math.abs(v) >= 1000 ? v.toFixed(0) : String(Number(v.toPrecision(4))));

const raw = (vs: readonly number[]) => vs.map((v) => Number(v.toPrecision(4))).join(", ");

/** One line per comparison: the metric, which way is better, and the conclusion; without an
 * interval, the raw final values too. */
export function comparisonSentence(c: ArmComparison): string {
  const finals =
    c.lo === null ? ` (final ${c.a} ${raw(c.values.a)}; ${c.b} ${raw(c.values.b)})` : "";
  return `${c.metric} (${c.better} is better), ${c.a} vs ${c.b}: ${c.conclusion}${finals}`;
}

/** The comparison paired by seed, when it has an interval (two seeds or more in both arms). */
export function pairedSentence(c: ArmComparison): string | null {
  if (c.paired.lo === null) return null;
  return `${c.metric} (${c.better} is better), ${c.a} vs ${c.b}, paired by seed (n=${c.paired.n}): ${c.paired.conclusion}`;
}

/** One line per arm (but the reference) and metric about steps_to_reach; the step figure only
 * when the target is reached, with its spread over the seeds that reach it. */
export function reachSentence(
  arm: string,
  metric: string,
  s: MetricStats,
  reference = "baseline",
): string | null {
  const r = s.steps_to_reach;
  if (!r) return null;
  const n = r.seeds;
  const target = `${reference}'s final mean ${metric} (${num(r.target)})`;
  if (r.reached === 0 || r.mean === null) {
    return `${metric}: ${arm} does not reach the ${target} within ${s.final.step} steps (0 of ${n} seeds).`;
  }
  const spread = r.reached > 1 ? ` ± ${Math.round(r.sd ?? 0)} (sd)` : "";
  return `${metric}: ${arm} reaches the ${target} in ${r.reached} of ${n} seeds, first at step ${Math.round(r.mean)}${spread}.`;
}

/** The summary lines of a SeedStats: every comparison, the same paired by seed, then
 * steps_to_reach of every other arm. */
export function seedSentences(stats: SeedStats, reference = "baseline"): string[] {
  const out = stats.comparisons.map(comparisonSentence);
  for (const c of stats.comparisons) {
    const line = pairedSentence(c);
    if (line) out.push(line);
  }
  for (const [arm, a] of Object.entries(stats.arms)) {
    if (arm === reference) continue;
    for (const [metric, s] of Object.entries(a.metrics)) {
      const line = reachSentence(arm, metric, s, reference);
      if (line) out.push(line);
    }
  }
  return out;
}

// ---------------------------------------------------------------- the page's summary

/** 100·v with one decimal and its sign always written ("+5.1", "-0.0"). */
const signedPct = (v: number) => {
  const s = pct1(v);
  return s.startsWith("-") ? s : `+${s}`;
};

/** One comparison inside a metric's summary line. */
export interface MetricPart {
  a: string;
  b: string;
  /** Which interval the part reports: paired by seed (the seeds both arms have, two or more),
   * else Welch's (unpaired), else none (one seed on a side, or a value <= 0). */
  basis: "paired" | "welch" | "none";
  /** Seeds paired (basis "paired"), else the smaller arm's seeds. */
  n: number;
  rel: number | null;
  lo: number | null;
  hi: number | null;
  /** Which arm the interval says is better ("a", "b"), or null (a tie, or no interval). */
  verdict: "a" | "b" | null;
  /** "se better", "se worse", "no detectable difference", "no interval", ... */
  word: string;
  /** The figures after the word. text = `${a} vs ${b}: ${word}${detail}`. */
  detail: string;
  text: string;
}

/** Steps an arm takes to reach the reference arm's final mean, inside a metric's line. */
export interface ReachPart extends StepsToReach {
  arm: string;
  /** The arm's final step: "within" it when no seed reaches the target. */
  within: number;
  text: string;
}

/** One line per metric: every comparison (paired by seed when the seeds allow), and the steps
 * each other arm takes to reach the reference's final mean. text = head + ": " + the parts'
 * texts joined by "; " + "." + (" " + reachText + "." when there is one). */
export interface MetricLine {
  metric: string;
  better: Better;
  head: string;
  parts: MetricPart[];
  reach: ReachPart[];
  reachText: string | null;
  text: string;
}

function metricPart(c: ArmComparison): MetricPart {
  const pick =
    c.paired.lo !== null && c.paired.hi !== null && c.paired.rel !== null
      ? {
          basis: "paired" as const,
          n: c.paired.n,
          rel: c.paired.rel,
          lo: c.paired.lo,
          hi: c.paired.hi,
        }
      : c.lo !== null && c.hi !== null && c.rel !== null
        ? { basis: "welch" as const, n: Math.min(c.na, c.nb), rel: c.rel, lo: c.lo, hi: c.hi }
        : { basis: "none" as const, n: Math.min(c.na, c.nb), rel: c.rel, lo: null, hi: null };
  const v = pick.lo === null ? null : verdict({ lo: pick.lo, hi: pick.hi, better: c.better });
  let word: string;
  let detail: string;
  if (pick.rel === null) {
    word = "no relative difference";
    detail = " (a value <= 0)";
  } else if (pick.lo === null || pick.hi === null) {
    word = "no interval";
    detail = `: one seed per arm, ${signedPct(pick.rel)}% (final ${c.a} ${raw(c.values.a)}; ${c.b} ${raw(c.values.b)})`;
  } else {
    word = v === "a" ? `${c.a} better` : v === "b" ? `${c.a} worse` : "no detectable difference";
    const basis = pick.basis === "welch" ? " (unpaired: the arms share too few seeds)" : "";
    detail = `, ${signedPct(pick.rel)}% [${signedPct(pick.lo)}%, ${signedPct(pick.hi)}%]${basis}`;
  }
  const text = `${c.a} vs ${c.b}: ${word}${detail}`;
  return { a: c.a, b: c.b, ...pick, verdict: v, word, detail, text };
}

function reachPart(arm: string, s: MetricStats): ReachPart | null {
  const r = s.steps_to_reach;
  if (!r) return null;
  let text: string;
  if (r.reached === 0 || r.mean === null) {
    text = `${arm} in 0 of ${r.seeds} seeds within ${s.final.step} steps`;
  } else {
    const spread = r.reached > 1 ? ` ± ${Math.round(r.sd ?? 0)}` : "";
    text = `${arm} in ${r.reached} of ${r.seeds} seeds, first at step ${Math.round(r.mean)}${spread}`;
  }
  return { ...r, arm, within: s.final.step, text };
}

/** The summary: one line per metric that has a comparison, in SEED_METRICS order. */
export function metricLines(stats: SeedStats, reference = "baseline"): MetricLine[] {
  const out: MetricLine[] = [];
  const metrics = [...new Set(stats.comparisons.map((c) => c.metric))];
  for (const metric of metrics) {
    const cs = stats.comparisons.filter((c) => c.metric === metric);
    const better = (cs[0] as ArmComparison).better;
    const parts = cs.map(metricPart);
    const paired = new Set(parts.map((p) => (p.basis === "paired" ? p.n : -1)));
    const head =
      paired.size === 1 && !paired.has(-1)
        ? `${metric} (${better} is better), paired by seed (n=${[...paired][0]})`
        : `${metric} (${better} is better)`;
    const reach: ReachPart[] = [];
    for (const [arm, a] of Object.entries(stats.arms)) {
      if (arm === reference) continue;
      const m = a.metrics[metric];
      const r = m ? reachPart(arm, m) : null;
      if (r) reach.push(r);
    }
    const target = reach[0]?.target;
    const reachText =
      reach.length && target !== undefined
        ? `Steps to reach the ${reference}'s final mean (${num(target)}): ${reach.map((r) => r.text).join("; ")}`
        : null;
    const text = `${head}: ${parts.map((p) => p.text).join("; ")}.${reachText ? ` ${reachText}.` : ""}`;
    out.push({ metric, better, head, parts, reach, reachText, text });
  }
  return out;
}

/** Arm a relative to arm b at every eval step, paired by seed: at each step that every seed both
 * arms have reached, pairedLogRelDiff of their values. The last point is the comparison's paired
 * result when both arms end at the same step. */
export function pairedCurve(
  a: readonly SeedSeries[],
  b: readonly SeedSeries[],
  metric: string,
): (PairedDiff & { step: number })[] {
  const bySeed = (list: readonly SeedSeries[]) =>
    new Map(
      list
        .filter((s): s is SeedSeries & { seed: number } => typeof s.seed === "number")
        .map((s) => [s.seed, clean(s.metrics[metric] ?? [])] as const),
    );
  const ma = bySeed(a);
  const mb = bySeed(b);
  const seeds = [...ma.keys()].filter((k) => mb.has(k)).sort((x, y) => x - y);
  if (seeds.length === 0) return [];
  const series = seeds.flatMap((k) => [ma.get(k), mb.get(k)] as Map<number, number>[]);
  const steps = [...(series[0] as Map<number, number>).keys()].filter((step) =>
    series.every((m) => m.has(step)),
  );
  const out: (PairedDiff & { step: number })[] = [];
  for (const step of steps) {
    const at = (m: Map<number, Map<number, number>>) =>
      new Map(seeds.map((k) => [k, m.get(k)?.get(step) as number]));
    const d = pairedLogRelDiff(at(ma), at(mb));
    if (d.rel !== null) out.push({ ...d, step });
  }
  return out;
}
