// The admin comparison's summary, computed from the metric histories alone (pure, no I/O):
// at what step the SE run reaches the baseline's final value (linear interpolation between the
// two evaluations around the crossing, or "not reached"), as a share of the baseline's steps, and
// how the final values differ. Used for the diffusion metric (FD, lower is better) and the
// autoencoder's validation PSNR (higher is better).

export interface StepValue {
  step: number;
  value: number;
}

export type Better = "lower" | "higher";

/** The first step at which `series` reaches `target` (<= for "lower", >= for "higher"), linearly
 * interpolated between the evaluation before the crossing and the one at it; null when never. */
export function stepToReach(series: readonly StepValue[], target: number, better: Better) {
  const points = finite(series);
  const reached = (v: number) => (better === "lower" ? v <= target : v >= target);
  for (let i = 0; i < points.length; i++) {
    const p = points[i] as StepValue;
    if (!reached(p.value)) continue;
    const prev = points[i - 1];
    if (!prev || p.value === prev.value) return p.step;
    const t = (target - prev.value) / (p.value - prev.value);
    return prev.step + t * (p.step - prev.step);
  }
  return null;
}

export interface ReachSummary {
  metric: string;
  better: Better;
  baselineFinal: StepValue | null;
  seFinal: StepValue | null;
  /** Step at which SE reaches the baseline's final value (interpolated); null: not reached. */
  reachStep: number | null;
  /** reachStep / the baseline's final step (0..1+); null when not reached or undefined. */
  reachFraction: number | null;
  /** seFinal - baselineFinal. */
  finalDiff: number | null;
  /** (seFinal - baselineFinal) / |baselineFinal|. */
  finalRelDiff: number | null;
  /** Each run's best evaluation (the first, on ties). */
  baselineBest: StepValue | null;
  seBest: StepValue | null;
}

/** Sorted by step, non-finite values dropped (NaN is logged as null by the trainers). */
function finite(series: readonly StepValue[]): StepValue[] {
  return series
    .filter((p) => Number.isFinite(p.step) && Number.isFinite(p.value))
    .map((p) => ({ step: p.step, value: p.value }))
    .sort((x, y) => x.step - y.step);
}

export function compareSeries(
  baseline: readonly StepValue[],
  se: readonly StepValue[],
  metric: string,
  better: Better,
): ReachSummary {
  const base = finite(baseline);
  const other = finite(se);
  const baselineFinal = base.at(-1) ?? null;
  const seFinal = other.at(-1) ?? null;
  const reachStep = baselineFinal ? stepToReach(other, baselineFinal.value, better) : null;
  const reachFraction =
    reachStep !== null && baselineFinal && baselineFinal.step > 0
      ? reachStep / baselineFinal.step
      : null;
  const finalDiff = baselineFinal && seFinal ? seFinal.value - baselineFinal.value : null;
  const finalRelDiff =
    finalDiff !== null && baselineFinal && baselineFinal.value !== 0
      ? finalDiff / Math.abs(baselineFinal.value)
      : null;
  const best = (points: StepValue[]) =>
    points.reduce<StepValue | null>((b, p) => {
      if (b === null) return p;
      return (better === "lower" ? p.value < b.value : p.value > b.value) ? p : b;
    }, null);
  return {
    metric,
    better,
    baselineFinal,
    seFinal,
    reachStep,
    reachFraction,
    finalDiff,
    finalRelDiff,
    baselineBest: best(base),
    seBest: best(other),
  };
}

const num = (v: number, digits = 2) => v.toFixed(digits);
const pct = (v: number) => `${(v * 100).toFixed(1)}%`;

/** One or two plain sentences about a ReachSummary; `unit` follows values (" dB"). */
export function describeReach(s: ReachSummary, unit = ""): string[] {
  if (!s.baselineFinal || !s.seFinal) return [`${s.metric}: not enough data to compare.`];
  const b = s.baselineFinal;
  const out: string[] = [];
  if (s.reachStep === null) {
    out.push(
      `SE does not reach the baseline's final ${s.metric} (${num(b.value)}${unit} at step ${b.step}) within its ${s.seFinal.step} steps.`,
    );
  } else {
    const share =
      s.reachFraction === null ? "" : ` (${pct(s.reachFraction)} of the baseline's steps)`;
    out.push(
      `SE reaches the baseline's final ${s.metric} (${num(b.value)}${unit} at step ${b.step}) at step ${Math.round(s.reachStep)}${share}.`,
    );
  }
  const diff = s.finalDiff as number;
  const rel = s.finalRelDiff;
  const direction = diff === 0 ? "equal" : diff < 0 ? "lower" : "higher";
  const relText = rel === null ? "" : `, ${pct(Math.abs(rel))} ${direction}`;
  const verdict =
    diff === 0 ? "" : diff < 0 === (s.better === "lower") ? ": SE better" : ": baseline better";
  out.push(
    `Final ${s.metric}: SE ${num(s.seFinal.value)}${unit} vs baseline ${num(b.value)}${unit} (${diff >= 0 ? "+" : ""}${num(diff)}${unit}${relText}${verdict}).`,
  );
  // A curve whose last value is not its best (e.g. an FD that dips, then rises) makes the
  // step-to-reach figure above say little about learning speed: say so, with the best values.
  const bb = s.baselineBest;
  const sb = s.seBest;
  if (bb && sb && (bb.value !== b.value || sb.value !== s.seFinal.value)) {
    out.push(
      `Best ${s.metric}: baseline ${num(bb.value)}${unit} at step ${bb.step}, SE ${num(sb.value)}${unit} at step ${sb.step}; the curves are not monotone, so the step to reach the final value is weak evidence.`,
    );
  }
  return out;
}

export interface ComparisonSummary {
  /** The diffusion metric (fd_rand3d or fvd_i3d) against diffusion steps; null without runs. */
  fd: ReachSummary | null;
  /** Autoencoder validation PSNR against AE steps. */
  psnr: ReachSummary | null;
  sentences: string[];
}

export function summarize(input: {
  fd?: { metric: string; baseline: StepValue[]; se: StepValue[] } | null;
  psnr?: { baseline: StepValue[]; se: StepValue[] } | null;
}): ComparisonSummary {
  const fd = input.fd
    ? compareSeries(input.fd.baseline, input.fd.se, input.fd.metric, "lower")
    : null;
  const psnr = input.psnr
    ? compareSeries(input.psnr.baseline, input.psnr.se, "PSNR", "higher")
    : null;
  const sentences = [...(fd ? describeReach(fd) : []), ...(psnr ? describeReach(psnr, " dB") : [])];
  return { fd, psnr, sentences };
}
