// The admin page's experiment view: diffusion runs grouped by experiment, then by arm (the
// autoencoder variant) over seeds (config.train.seed), with the statistics of seed-stats.ts, the
// charts' bands (mean ± sd over seeds per arm), the chance line of the class score, and the
// autoencoders of the three arms (loss and PSNR curves, spectra, the reconstruction table).

import {
  brief,
  type Chart,
  type ChartSeries,
  CompareError,
  lastVal,
  pairs,
  type RunBrief,
  type RunInfo,
  type RunReader,
  spectrumChart,
  TABLE,
  variantOf,
} from "./run-compare.ts";
import {
  ARMS,
  type ArmComparison,
  type ArmStats,
  comparisonSentence,
  type MetricLine,
  metricLines,
  pairedCurve,
  SEED_METRICS,
  type SeedSeries,
  type SeedStats,
  seedSentences,
  seedStats,
  verdict,
} from "./seed-stats.ts";

/** A diffusion run in a group: its arm and seed. */
export interface GroupRun {
  run: RunInfo;
  arm: string;
  seed: number | null;
}

export interface RunGroup {
  /** `experiment:<name>`, or `model:<name>:<steps>` for runs without an experiment. */
  key: string;
  label: string;
  experiment: string | null;
  /** One run per (arm, seed): the newest. Newest first. */
  runs: GroupRun[];
  /** ms since the epoch of the group's newest run. */
  latest: number;
}

const str = (v: unknown) => (typeof v === "string" && v !== "" ? v : null);
const obj = (v: unknown) =>
  v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};

/** The group a diffusion run belongs to: its experiment, else its model name and step budget. */
export function groupKeyOf(run: RunInfo): {
  key: string;
  label: string;
  experiment: string | null;
} {
  const experiment = str(run.config.experiment);
  if (experiment) return { key: `experiment:${experiment}`, label: experiment, experiment };
  const model = str(obj(run.config.model).name) ?? "?";
  const steps = obj(run.config.train).steps;
  const s = typeof steps === "number" ? String(steps) : "?";
  return {
    key: `model:${model}:${s}`,
    label: `${model} · ${s} steps (no experiment)`,
    experiment: null,
  };
}

const seedOf = (run: RunInfo) => {
  const s = obj(run.config.train).seed;
  return typeof s === "number" && Number.isFinite(s) ? s : null;
};

/** The run a run was initialised from (its config's init.run_id), or null. */
const initOf = (run: RunInfo) => str(obj(run.config.init).run_id);

/** The diffusion runs' groups, newest first. A repeated (arm, seed) keeps its newest run, and a
 * run that another run of the same group and arm continues (`--init` from its checkpoint) is a
 * stage of that run, not a seed of its own: only the last stage stays. */
export function diffusionGroups(src: RunReader): RunGroup[] {
  const listed = src.listRuns({ kind: "diffusion", limit: 500 });
  const placed = listed.map((run) => ({ run, arm: variantOf(src, run), ...groupKeyOf(run) }));
  const continued = new Set(
    placed.flatMap((p) => {
      const init = initOf(p.run);
      return init ? [`${p.key}|${p.arm}|${init}`] : [];
    }),
  );
  const groups = new Map<string, RunGroup>();
  for (const { run, arm, key, label, experiment } of placed) {
    if (!arm || continued.has(`${key}|${arm}|${run.id}`)) continue;
    let g = groups.get(key);
    if (!g) {
      g = { key, label, experiment, runs: [], latest: run.createdAt };
      groups.set(key, g);
    }
    const seed = seedOf(run);
    if (g.runs.some((r) => r.arm === arm && r.seed === seed)) continue;
    g.runs.push({ run, arm, seed });
    g.latest = Math.max(g.latest, run.createdAt);
  }
  return [...groups.values()].sort((x, y) => y.latest - x.latest);
}

const armCount = (g: RunGroup) => new Set(g.runs.map((r) => r.arm)).size;

/** Seeds that at least two arms of the group have: what a comparison paired by seed uses. */
const sharedSeeds = (g: RunGroup) => {
  const arms = new Map<number | null, Set<string>>();
  for (const r of g.runs) arms.set(r.seed, (arms.get(r.seed) ?? new Set()).add(r.arm));
  return [...arms.values()].filter((a) => a.size >= 2).length;
};

/** The group to show: the one asked for, else the latest whose arms share at least two seeds
 * (a comparison with a spread), else the latest with runs in at least two arms. */
export function pickGroup(groups: readonly RunGroup[], key?: string): RunGroup | null {
  if (key) {
    const g = groups.find((x) => x.key === key);
    if (!g)
      throw new CompareError(
        "group_not_found",
        `no group of diffusion runs "${key}" (there are: ${groups.map((x) => x.key).join(", ") || "none"})`,
      );
    return g;
  }
  return (
    groups.find((g) => armCount(g) >= 2 && sharedSeeds(g) >= 2) ??
    groups.find((g) => armCount(g) >= 2) ??
    null
  );
}

/** Arms in display order: the known ones first, then any other variant by name. */
export function orderArms(arms: Iterable<string>): string[] {
  const known = ARMS as readonly string[];
  return [...new Set(arms)].sort((x, y) => {
    const ix = known.indexOf(x);
    const iy = known.indexOf(y);
    if (ix !== iy) return (ix < 0 ? known.length : ix) - (iy < 0 ? known.length : iy);
    return x < y ? -1 : x > y ? 1 : 0;
  });
}

/** The group's seeds per arm, with the eval metrics of seed-stats.ts. */
export function groupSeeds(src: RunReader, g: RunGroup): Record<string, SeedSeries[]> {
  const out: Record<string, SeedSeries[]> = {};
  for (const arm of orderArms(g.runs.map((r) => r.arm))) out[arm] = [];
  for (const r of g.runs) {
    const metrics: SeedSeries["metrics"] = {};
    for (const m of SEED_METRICS) {
      const points = src.getMetrics(r.run.id, `eval/${m.name}`);
      if (points.length) metrics[m.name] = points;
    }
    out[r.arm]?.push({ seed: r.seed, runId: r.run.id, metrics });
  }
  return out;
}

export interface BandSeries {
  arm: string;
  label: string;
  /** Number of seeds. */
  n: number;
  /** [step, mean, mean - sd, mean + sd] per common eval step. */
  points: [number, number, number, number][];
}

export interface BandChart {
  id: string;
  /** "absolute": each arm's mean over seeds with a mean ± sd band; "relative": each arm against
   * the baseline in %, paired by seed, with the 95% interval as its band. */
  kind: "absolute" | "relative";
  metric: string;
  title: string;
  better: "lower" | "higher";
  x: { label: string };
  y: { label: string };
  /** What the band around each mean line is. */
  band: string;
  series: BandSeries[];
  /** A horizontal reference line (the class score's chance level). */
  chance: { value: number; label: string } | null;
  /** The relative chart's zero line: the baseline itself. */
  reference: { value: number; label: string } | null;
}

export interface GridTableRow {
  key: string;
  label: string;
  better: "lower" | "higher" | null;
  values: (number | null)[];
}

export interface GridArm {
  arm: string;
  seeds: (number | null)[];
  runs: string[];
  autoencoder: RunBrief | null;
}

export interface Grid {
  groups: { key: string; label: string; experiment: string | null; arms: Record<string, number> }[];
  group: { key: string; label: string; experiment: string | null } | null;
  arms: GridArm[];
  numClasses: number | null;
  stats: SeedStats;
  /** Per metric: the relative chart (each arm against the baseline), then the absolute one. */
  charts: BandChart[];
  ae: {
    charts: Chart[];
    table: { columns: string[]; rows: GridTableRow[] };
    /** Each arm's autoencoder and the URL of its latent-channels picture (null: none yet). */
    pictures: { arm: string; runId: string; latentChannels: string | null }[];
  };
  /** Reconstruction against diffusion quality, per latent-channel count (issue 21, part 5). */
  tradeOff: TradeOff;
  summary: {
    /** One line per metric, paired by seed: what the page shows first. */
    metrics: MetricLine[];
    /** Every comparison (Welch), one line each; `sentences` adds the paired ones and the steps
     * to reach: the page's details. */
    lines: { metric: string; a: string; b: string; verdict: "a" | "b" | null; text: string }[];
    sentences: string[];
  };
  warnings: string[];
}

const TITLES: Record<string, string> = {
  fd_cls3d: "fd_cls3d (classifier features) against diffusion steps",
  fd_rand3d: "fd_rand3d (random 3D features) against diffusion steps",
  fvd_i3d: "fvd_i3d against diffusion steps",
  lfd: "lfd (samples' latents from the data's, before the decoder) against diffusion steps",
  lfd_t:
    "lfd as a noise-equivalent t (held-out latents blended with noise to the same lfd) against diffusion steps",
  class_score: "class score against diffusion steps",
  val_loss: "validation loss against diffusion steps",
  grid_ratio:
    "grid ratio of the samples (8-px block edges over block insides) against diffusion steps",
};

/** Each other arm relative to the reference arm over eval steps, in %, paired by seed. */
function relativeChart(
  seeds: Record<string, SeedSeries[]>,
  arms: string[],
  spec: { name: string; better: "lower" | "higher" },
  reference = "baseline",
): BandChart | null {
  const ref = seeds[reference];
  if (!ref) return null;
  const series: BandSeries[] = [];
  for (const arm of arms) {
    if (arm === reference) continue;
    const curve = pairedCurve(seeds[arm] ?? [], ref, spec.name);
    if (curve.length === 0) continue;
    const n = Math.min(...curve.map((p) => p.n));
    const pct = (v: number) => 100 * v;
    series.push({
      arm,
      label: `${arm} vs ${reference} (${n} paired seed${n === 1 ? "" : "s"})`,
      n,
      points: curve.map((p) => {
        const rel = p.rel as number;
        return [p.step, pct(rel), pct(p.lo ?? rel), pct(p.hi ?? rel)];
      }),
    });
  }
  if (series.length === 0) return null;
  return {
    id: `${spec.name}-relative`,
    kind: "relative",
    metric: spec.name,
    title: `${spec.name} relative to the ${reference}, paired by seed (${spec.better} is better)`,
    better: spec.better,
    x: { label: "diffusion step" },
    y: { label: `% vs ${reference}` },
    band: "95% interval, paired by seed",
    series,
    chance: null,
    reference: { value: 0, label: reference },
  };
}

function bandCharts(
  stats: SeedStats,
  seeds: Record<string, SeedSeries[]>,
  arms: string[],
  numClasses: number | null,
): BandChart[] {
  const charts: BandChart[] = [];
  for (const spec of SEED_METRICS) {
    const relative = relativeChart(seeds, arms, spec);
    if (relative) charts.push(relative);
    const series: BandSeries[] = [];
    for (const arm of arms) {
      const m = (stats.arms[arm] as ArmStats | undefined)?.metrics[spec.name];
      if (!m) continue;
      series.push({
        arm,
        label: `${arm} (${m.final.n} seed${m.final.n === 1 ? "" : "s"})`,
        n: m.final.n,
        points: m.steps.map((step, i) => {
          const mu = m.mean[i] as number;
          const sd = m.sd[i] as number;
          return [step, mu, mu - sd, mu + sd];
        }),
      });
    }
    if (series.length === 0) continue;
    charts.push({
      id: spec.name,
      kind: "absolute",
      metric: spec.name,
      title: `${TITLES[spec.name] ?? spec.name} (${spec.better} is better)`,
      better: spec.better,
      x: { label: "diffusion step" },
      y: { label: spec.name === "class_score" ? "class score" : spec.name },
      band: "mean ± sd over seeds",
      series,
      chance:
        spec.name === "class_score" && numClasses
          ? { value: 1 / numClasses, label: `chance (1/${numClasses})` }
          : null,
      reference: null,
    });
  }
  return charts;
}

/** Each arm's autoencoder: the one its newest diffusion run names (when in the registry), else
 * the latest autoencoder run of that variant. */
function armAutoencoders(src: RunReader, g: RunGroup | null, arms: string[]): Map<string, RunInfo> {
  const out = new Map<string, RunInfo>();
  const aes = src.listRuns({ kind: "autoencoder", limit: 500 });
  for (const arm of arms) {
    const named = g?.runs.find((r) => r.arm === arm && r.run.autoencoderRunId)?.run
      .autoencoderRunId;
    const byName = named ? src.getRun(named) : null;
    const ae = byName?.kind === "autoencoder" ? byName : aes.find((r) => variantOf(src, r) === arm);
    if (ae) out.set(arm, ae);
  }
  return out;
}

function aeCharts(src: RunReader, aes: Map<string, RunInfo>): Chart[] {
  const runs = [...aes.entries()];
  if (runs.length === 0) return [];
  const charts: Chart[] = [];
  const hasRec = runs.every(([, r]) => src.metricNames(r.id).includes("train/loss_rec"));
  const lossName = hasRec ? "train/loss_rec" : "train/loss";
  const series = (name: string, positive: boolean): ChartSeries[] =>
    runs.map(([arm, r]) => ({
      key: arm,
      label: `${arm} · ${r.id}`,
      runId: r.id,
      points: pairs(src.getMetrics(r.id, name), positive),
    }));
  charts.push({
    id: "ae_loss",
    title: `autoencoder training loss (${lossName.slice(6)})`,
    x: { label: "autoencoder step" },
    y: { label: lossName.slice(6), log: true },
    series: series(lossName, true),
    ...(hasRec
      ? { note: "reconstruction loss only: an SE run's total loss adds its SE term" }
      : {}),
  });
  charts.push({
    id: "ae_psnr",
    title: "autoencoder validation PSNR (dB, higher is better)",
    x: { label: "autoencoder step" },
    y: { label: "PSNR (dB)", log: false },
    series: series("val/psnr", false),
  });
  const spectrum = spectrumChart(
    src,
    runs.map(([arm, r]) => ({ key: arm, label: `latent · ${arm} · ${r.id}`, run: r })),
  );
  if (spectrum) charts.push(spectrum);
  return charts;
}

const numberOrNull = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : null);

/** One arm's autoencoder on the trade-off chart: its reconstruction, and the final diffusion
 * quality of the group trained on its latents (null: no diffusion on it yet). */
export interface TradeOffPoint {
  channels: number | null;
  arm: string;
  /** The diffusion group's label; null for an autoencoder no group has used yet. */
  group: string | null;
  autoencoder: string;
  /** The autoencoder's PSNR (dB) on the val clips of `TradeOff.psnrFrom`. */
  psnr: number;
  /** The linear code of the same latent grid on the same clips (ae_eval only, else null). */
  linear: number | null;
  /** `TRADE_OFF_METRIC` at the last step every seed of the arm has: mean ± sd over n seeds. */
  fd: { step: number; mean: number; sd: number; n: number } | null;
}

export interface TradeOff {
  metric: string;
  /** Where the PSNRs come from: the autoencoder evaluation (`ae_eval`: 136 val clips, the
   * linear code beside it) when every point has one, else the runs' last `val` (80 clips). */
  psnrFrom: "ae_eval" | "val";
  points: TradeOffPoint[];
  /** What the chart compares, in one sentence. */
  note: string;
}

export const TRADE_OFF_METRIC = "fd_cls3d";

/** An autoencoder run's reconstruction PSNR from its last `val` event and, where it has one, from
 * its last `ae_eval` (procedural val, with the linear code's on the same clips). */
function reconstruction(src: RunReader, ae: RunInfo) {
  const val = numberOrNull(lastVal(src, ae).psnr);
  const ev = obj(obj(src.lastEvent(ae.id, "ae_eval")).procedural_val);
  const psnr = numberOrNull(ev.psnr);
  return {
    val,
    ae_eval: psnr === null ? null : { psnr, linear: numberOrNull(ev.psnr_linear_code) },
  };
}

const channelsOf = (config: Record<string, unknown>) =>
  numberOrNull(obj(config.model).latent_channels);
const architectureOf = (run: RunInfo) => str(obj(run.config.model).architecture);

/** The runs' one value of `f`, or null when they disagree or have none. */
function common<T>(runs: readonly GroupRun[], f: (r: RunInfo) => T | null): T | null {
  const values = new Set(runs.map((r) => f(r.run)));
  return values.size === 1 ? ([...values][0] ?? null) : null;
}

/** A diffusion recipe: what must match for two groups' quality to be compared across latent
 * spaces (the denoiser's name, steps and batch), everything but the latent channels. */
const recipeOf = (g: RunGroup) =>
  common(g.runs, (r) => {
    const train = obj(r.config.train);
    return `${str(obj(r.config.model).name)}|${train.steps}|${train.batch_size}`;
  });

/** Another group's final `TRADE_OFF_METRIC` per arm and its arms' autoencoders. */
function tradeOffArms(src: RunReader, group: RunGroup) {
  const seeds = groupSeeds(src, group);
  const metric = SEED_METRICS.filter((m) => m.name === TRADE_OFF_METRIC);
  const arms = orderArms(Object.keys(seeds));
  return { stats: seedStats(seeds, metric), aes: armAutoencoders(src, group, arms) };
}

/** The shown group's arms, each at (its autoencoder's PSNR, its final fd_cls3d); beside them the
 * newest group of two or more arms (one with all the shown arms first) with the same recipe at
 * each other latent-channel count, and every fine-tuned autoencoder of the same architecture at
 * a channel count no such group covers (reconstruction only: its diffusion is still to run). */
function tradeOff(
  src: RunReader,
  groups: readonly RunGroup[],
  g: RunGroup | null,
  shownStats: { stats: SeedStats; aes: Map<string, RunInfo> },
): TradeOff {
  type Raw = Omit<TradeOffPoint, "psnr" | "linear"> & { rec: ReturnType<typeof reconstruction> };
  const raw: Raw[] = [];
  const note =
    "Each arm's autoencoder: validation PSNR (right is better) against the final " +
    `${TRADE_OFF_METRIC} of the denoisers trained on its latents (lower is better), mean ± sd ` +
    "over seeds; groups of the same recipe at each latent-channel count; dotted: the linear " +
    "code of each latent grid on the same clips.";
  if (!g) return { metric: TRADE_OFF_METRIC, psnrFrom: "val", points: [], note };
  const recipe = recipeOf(g);
  const shown: RunGroup[] = [g];
  const own = common(g.runs, (r) => channelsOf(r.config));
  // Per other channel count, the newest comparison (a group of one arm, say one more SE weight,
  // does not stand for its channels), and before it the newest that has every arm shown here
  // (a control experiment of baseline and se-spatial does not replace the baseline/se grid).
  const arms = new Set(g.runs.map((r) => r.arm));
  const hasArms = (other: RunGroup) => [...arms].every((a) => other.runs.some((r) => r.arm === a));
  const byChannels = new Map<number | null, RunGroup>();
  for (const other of groups) {
    const channels = common(other.runs, (r) => channelsOf(r.config));
    if (recipe === null || recipeOf(other) !== recipe || channels === own) continue;
    if (armCount(other) < 2) continue;
    const held = byChannels.get(channels);
    if (!held || (!hasArms(held) && hasArms(other))) byChannels.set(channels, other);
  }
  shown.push(...byChannels.values());
  const covered = new Set([own, ...byChannels.keys()]);
  const architectures = new Set<string | null>();
  for (const group of shown) {
    // the shown group's statistics and autoencoders are buildGrid's; the others' are made here
    const { stats, aes } = group === g ? shownStats : tradeOffArms(src, group);
    const channels = common(group.runs, (r) => channelsOf(r.config));
    for (const [arm, ae] of aes) {
      architectures.add(architectureOf(ae));
      const final = stats.arms[arm]?.metrics[TRADE_OFF_METRIC]?.final;
      raw.push({
        channels,
        arm,
        group: group.label,
        autoencoder: ae.id,
        rec: reconstruction(src, ae),
        fd: final ? { step: final.step, mean: final.mean, sd: final.sd, n: final.n } : null,
      });
    }
  }
  // Fine-tunes (an `init` run) only: a pre-train is no arm. Newest first, one per variant.
  const seen = new Set<string>();
  for (const ae of src.listRuns({ kind: "autoencoder", limit: 500 })) {
    const channels = channelsOf(ae.config);
    const arm = variantOf(src, ae);
    const key = `${channels}|${arm}`;
    if (!arm || covered.has(channels) || seen.has(key) || !initOf(ae)) continue;
    if (!architectures.has(architectureOf(ae))) continue;
    seen.add(key);
    raw.push({
      channels,
      arm,
      group: null,
      autoencoder: ae.id,
      rec: reconstruction(src, ae),
      fd: null,
    });
  }
  // One source for every point: PSNRs on different clips do not share an axis.
  const measured = raw.filter((r) => r.rec.val !== null || r.rec.ae_eval !== null);
  const psnrFrom = measured.every((r) => r.rec.ae_eval) ? "ae_eval" : "val";
  const points = measured.flatMap(({ rec, ...r }) => {
    const psnr = psnrFrom === "ae_eval" ? (rec.ae_eval?.psnr ?? null) : rec.val;
    const linear = psnrFrom === "ae_eval" ? (rec.ae_eval?.linear ?? null) : null;
    return psnr === null ? [] : [{ ...r, psnr, linear }];
  });
  return { metric: TRADE_OFF_METRIC, psnrFrom, points, note };
}

/** The experiment view of one group (the latest with two arms unless `key` names one).
 * `latentChannels(run)` gives the URL of an autoencoder run's latent-channels picture, or null
 * (the caller looks at the run's folder: this module does no I/O). */
export function buildGrid(
  src: RunReader,
  key?: string,
  latentChannels: (run: RunInfo) => string | null = () => null,
): Grid {
  const groups = diffusionGroups(src);
  const g = pickGroup(groups, key);
  const seeds = g ? groupSeeds(src, g) : {};
  const stats = seedStats(seeds);
  const diffusionArms = Object.keys(seeds);
  const warnings: string[] = [];
  if (!g) warnings.push("no group of diffusion runs has runs in two arms yet");

  const classes = new Set(
    (g?.runs ?? []).map((r) => {
      const c = r.run.config.classes;
      return Array.isArray(c) ? c.length : null;
    }),
  );
  classes.delete(null);
  const numClasses = classes.size === 1 ? ([...classes][0] as number) : null;
  if (classes.size > 1)
    warnings.push("the group's runs have different class lists: no chance line");
  const hashes = new Set(
    (g?.runs ?? []).map((r) => str(obj(src.lastEvent(r.run.id, "eval")).extractor_hash)),
  );
  hashes.delete(null);
  if (hashes.size > 1) {
    warnings.push(
      `the group's runs use different feature extractors (${[...hashes].join(", ")}): their FD values are not comparable`,
    );
  }
  for (const arm of diffusionArms) {
    const a = stats.arms[arm] as ArmStats;
    for (const [metric, m] of Object.entries(a.metrics)) {
      const most = Math.max(
        ...(seeds[arm] ?? []).map((s) => (s.metrics[metric] ?? []).at(-1)?.step ?? 0),
      );
      if (most > m.final.step) {
        warnings.push(
          `${arm}: ${metric} is compared at step ${m.final.step}, the last step all its seeds have (one has ${most})`,
        );
        break;
      }
    }
  }

  // The group's own arms; the three canonical ones only when no group has diffusion runs yet
  // (an arm the group lacks would show another experiment's autoencoder beside "0 seeds").
  const aeArms = orderArms(diffusionArms.length > 0 ? diffusionArms : ARMS);
  const aes = armAutoencoders(src, g, aeArms);
  const aeList = [...aes.entries()];
  const vals = aeList.map(([, r]) => lastVal(src, r));
  const lines = stats.comparisons.map((c: ArmComparison) => ({
    metric: c.metric,
    a: c.a,
    b: c.b,
    verdict: verdict(c),
    text: comparisonSentence(c),
  }));
  return {
    groups: groups.map((x) => {
      const arms: Record<string, number> = {};
      for (const r of x.runs) arms[r.arm] = (arms[r.arm] ?? 0) + 1;
      return { key: x.key, label: x.label, experiment: x.experiment, arms };
    }),
    group: g ? { key: g.key, label: g.label, experiment: g.experiment } : null,
    arms: aeArms
      .filter((arm) => stats.arms[arm] || aes.has(arm))
      .map((arm) => {
        const ae = aes.get(arm);
        return {
          arm,
          seeds: stats.arms[arm]?.seeds ?? [],
          runs: stats.arms[arm]?.runs ?? [],
          autoencoder: ae ? brief(ae) : null,
        };
      }),
    numClasses,
    stats,
    charts: bandCharts(stats, seeds, diffusionArms, numClasses),
    ae: {
      charts: aeCharts(src, aes),
      table: {
        columns: aeList.map(([arm, r]) => `${arm} · ${r.id}`),
        rows: TABLE.map((r) => ({ ...r, values: vals.map((v) => numberOrNull(v[r.key])) })),
      },
      pictures: aeList.map(([arm, r]) => ({
        arm,
        runId: r.id,
        latentChannels: latentChannels(r),
      })),
    },
    tradeOff: tradeOff(src, groups, g, { stats, aes }),
    summary: { metrics: metricLines(stats), lines, sentences: seedSentences(stats) },
    warnings,
  };
}
