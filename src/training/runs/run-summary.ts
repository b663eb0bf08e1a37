// The summary of a two-run comparison (a baseline run and an SE run), computed from the metric
// histories alone (pure, no I/O) with the definitions of seed-stats.ts, each run being an arm of
// one seed: the final values (one seed per arm gives no interval and no conclusion) and the step
// at which the SE run first reaches the baseline's final value, said only when it does. Used for
// the diffusion metric (FD, lower is better) and the autoencoder's validation PSNR (higher).

import {
  type Better,
  type SeedStats,
  type StepValue,
  seedSentences,
  seedStats,
} from "./seed-stats.ts";

export type { Better, StepValue };

export interface ComparisonSummary {
  /** The diffusion metric (the first of run-compare.ts FD_METRICS) against diffusion steps; null without runs. */
  fd: SeedStats | null;
  /** Autoencoder validation PSNR against AE steps. */
  psnr: SeedStats | null;
  sentences: string[];
}

/** One metric of two single-seed arms, baseline and se, compared as seed-stats.ts does. */
export function pairStats(
  metric: string,
  better: Better,
  baseline: readonly StepValue[],
  se: readonly StepValue[],
): SeedStats {
  const arm = (runId: string, points: readonly StepValue[]) => [
    { seed: null, runId, metrics: { [metric]: points } },
  ];
  return seedStats(
    { baseline: arm("baseline", baseline), se: arm("se", se) },
    [{ name: metric, better }],
    [["se", "baseline"]],
  );
}

export function summarize(input: {
  fd?: { metric: string; baseline: StepValue[]; se: StepValue[] } | null;
  psnr?: { baseline: StepValue[]; se: StepValue[] } | null;
}): ComparisonSummary {
  const fd = input.fd ? pairStats(input.fd.metric, "lower", input.fd.baseline, input.fd.se) : null;
  const psnr = input.psnr ? pairStats("psnr", "higher", input.psnr.baseline, input.psnr.se) : null;
  const sentences = [fd, psnr].flatMap((s) => {
    if (!s) return [];
    const lines = seedSentences(s);
    return lines.length ? lines : ["not enough data to compare (a run has no finite values)."];
  });
  return { fd, psnr, sentences };
}
