// The admin page's comparison of two training runs (a baseline and an SE run), built from the run
// registry: exactly the series each chart draws, the autoencoder metrics table, and the summary
// (run-summary.ts). A side is a diffusion run (with the autoencoder run it was trained on) or,
// when there are no diffusion runs, an autoencoder run alone.

import { AppError } from "../../app-error.ts";
import { type ComparisonSummary, type StepValue, summarize } from "./run-summary.ts";

export type RunKind = "autoencoder" | "diffusion";

/** A run as the comparison needs it (normalised from the registry's row). */
export interface RunInfo {
  id: string;
  kind: RunKind;
  variant: string | null;
  status: string;
  autoencoderRunId: string | null;
  config: Record<string, unknown>;
  /** ms since the epoch; orders "latest". */
  createdAt: number;
  /** Total steps of the run's train config, when known. */
  steps?: number | null;
  /** The run's folder on this machine (where it was imported from, or where it writes). */
  folder?: string | null;
}

/** What the comparison reads from the registry (run-store.ts, bound to a db: run-reader.ts). */
export interface RunReader {
  /** Newest first. */
  listRuns(opts?: { kind?: RunKind; limit?: number }): RunInfo[];
  getRun(id: string): RunInfo | null;
  metricNames(runId: string): string[];
  getMetrics(runId: string, name: string): StepValue[];
  lastEvent(runId: string, type: string): Record<string, unknown> | null;
}

export interface RunBrief {
  id: string;
  kind: RunKind;
  variant: string | null;
  status: string;
  autoencoderRunId: string | null;
  createdAt: string;
  /** The configured number of steps (config.train.steps), when known. */
  steps: number | null;
}

export interface ChartSeries {
  key: string;
  label: string;
  runId: string | null;
  /** [x, y] pairs, x ascending, y finite (and > 0 on a log axis). */
  points: [number, number][];
}

export interface Chart {
  id: "fd" | "class_score" | "ae_loss" | "ae_psnr" | "spectrum";
  title: string;
  x: { label: string };
  y: { label: string; log: boolean };
  series: ChartSeries[];
  note?: string;
}

export interface TableRow {
  key: string;
  label: string;
  better: "lower" | "higher" | null;
  a: number | null;
  b: number | null;
}

export interface Side {
  variant: string | null;
  diffusion: RunBrief | null;
  autoencoder: RunBrief | null;
}

export interface Comparison {
  a: Side;
  b: Side;
  charts: Chart[];
  table: { columns: [string, string]; rows: TableRow[] };
  summary: ComparisonSummary;
  warnings: string[];
}

/** A comparison of runs that are not there (404). */
export class CompareError extends AppError {
  override name = "CompareError";
  declare readonly code: "run_not_found" | "group_not_found" | "no_runs";
  constructor(code: "run_not_found" | "group_not_found" | "no_runs", message: string) {
    super(code, message, 404);
  }
}

export function brief(run: RunInfo): RunBrief {
  const train = run.config.train as { steps?: unknown } | undefined;
  return {
    id: run.id,
    kind: run.kind,
    variant: run.variant,
    status: run.status,
    autoencoderRunId: run.autoencoderRunId,
    createdAt: new Date(run.createdAt).toISOString(),
    steps: run.steps ?? (typeof train?.steps === "number" ? train.steps : null),
  };
}

/** A run's variant; a diffusion run without one inherits its autoencoder's. */
export function variantOf(src: RunReader, run: RunInfo): string | null {
  if (run.variant) return run.variant;
  const ae = run.config.autoencoder as { variant?: unknown } | undefined;
  if (typeof ae?.variant === "string") return ae.variant;
  if (run.autoencoderRunId) return src.getRun(run.autoencoderRunId)?.variant ?? null;
  return null;
}

/** The default pair: the latest baseline and the latest SE diffusion run; without diffusion
 * runs, the latest autoencoder pair. Null when no such pair exists. */
export function defaultPair(src: RunReader): { a: string; b: string } | null {
  for (const kind of ["diffusion", "autoencoder"] as const) {
    const runs = src.listRuns({ kind, limit: 500 });
    const base = runs.find((r) => variantOf(src, r) === "baseline");
    const se = runs.find((r) => variantOf(src, r) === "se");
    if (base && se) return { a: base.id, b: se.id };
  }
  return null;
}

function side(
  src: RunReader,
  id: string,
): Side & { runs: { d: RunInfo | null; ae: RunInfo | null } } {
  const run = src.getRun(id);
  if (!run) throw new CompareError("run_not_found", `no run "${id}"`);
  const d = run.kind === "diffusion" ? run : null;
  const aeId = d ? d.autoencoderRunId : run.id;
  const ae = aeId ? src.getRun(aeId) : null;
  return {
    variant: variantOf(src, run),
    diffusion: d ? brief(d) : null,
    autoencoder: ae ? brief(ae) : null,
    runs: { d, ae },
  };
}

export const pairs = (points: StepValue[], positive = false): [number, number][] =>
  points
    .filter(
      (p) => Number.isFinite(p.step) && Number.isFinite(p.value) && (!positive || p.value > 0),
    )
    .sort((x, y) => x.step - y.step)
    .map((p) => [p.step, p.value]);

const label = (s: Side, run: RunInfo) => `${s.variant ?? "?"} · ${run.id}`;

/** A diffusion run's distance to the real clips, the one to show first: FVD when the run had
 * I3D weights, then the class-score classifier's features (docs/RESULTS.md: it ranks the whole
 * degradation ladder right and is the more sensitive to broken motion), then random 3-D
 * features. The comparison, the runs table and the summary read this one list. */
export const FD_METRICS = ["eval/fvd_i3d", "eval/fd_cls3d", "eval/fd_rand3d"] as const;

/** The first of FD_METRICS both runs have, else the first either has. */
function fdMetric(src: RunReader, a: RunInfo, b: RunInfo): string | null {
  const na = new Set(src.metricNames(a.id));
  const nb = new Set(src.metricNames(b.id));
  for (const m of FD_METRICS) if (na.has(m) && nb.has(m)) return m;
  for (const m of FD_METRICS) if (na.has(m) || nb.has(m)) return m;
  return null;
}

/** The last `val` or `spectrum` event's fields (the spectrum event repeats val's figures). */
export function lastVal(src: RunReader, run: RunInfo | null): Record<string, unknown> {
  if (!run) return {};
  const val = src.lastEvent(run.id, "val") ?? {};
  const spectrum = src.lastEvent(run.id, "spectrum") ?? {};
  return (Number(spectrum.step) || 0) >= (Number(val.step) || 0)
    ? { ...val, ...spectrum }
    : { ...spectrum, ...val };
}

const numberOrNull = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : null);

export const TABLE: { key: string; label: string; better: TableRow["better"] }[] = [
  { key: "step", label: "AE step of these figures", better: null },
  { key: "psnr", label: "reconstruction PSNR (dB)", better: "higher" },
  { key: "ssim", label: "reconstruction SSIM", better: "higher" },
  { key: "latent_hf_share", label: "latent high-frequency share", better: "lower" },
  { key: "video_hf_share", label: "video high-frequency share", better: null },
  {
    key: "psnr_drop_latent_lowpass",
    label: "PSNR drop, latent zigzag 32–63 zeroed (dB)",
    better: "lower",
  },
  {
    key: "psnr_drop_video_lowpass",
    label: "PSNR drop, video zigzag 32–63 zeroed (dB)",
    better: null,
  },
];

/** The latent spectra of autoencoder runs (their last `spectrum` events) beside the video's,
 * taken from the first of them that logged it; null when none has a spectrum. */
export function spectrumChart(
  src: RunReader,
  entries: { key: string; label: string; run: RunInfo | null }[],
): Chart | null {
  const found = entries.map((e) => ({
    ...e,
    ev: e.run ? src.lastEvent(e.run.id, "spectrum") : null,
  }));
  if (!found.some((e) => e.ev)) return null;
  const video = found.find((e) => spectrumOf(e.ev, "video_spectrum").length);
  return {
    id: "spectrum",
    title: "latent and video DCT spectra (8×8 blocks, zigzag order, share of AC energy)",
    x: { label: "zigzag index" },
    y: { label: "share of AC energy", log: true },
    series: [
      ...found.map((e) => ({
        key: `${e.key}_latent`,
        label: e.label,
        runId: e.run?.id ?? null,
        points: spectrumOf(e.ev, "latent_spectrum"),
      })),
      {
        key: "video",
        label: "video",
        runId: video?.run?.id ?? null,
        points: spectrumOf(video?.ev ?? null, "video_spectrum"),
      },
    ],
    note: "high-frequency share = energy at zigzag 32–63 over AC energy (1–63)",
  };
}

/** A zigzag spectrum as each coefficient's share of the AC energy (entries 1..63): latents and
 * video carry different total energy, and the paper's claim is about where the energy sits. */
export function spectrumOf(ev: Record<string, unknown> | null, field: string): [number, number][] {
  const arr = ev?.[field];
  if (!Array.isArray(arr)) return [];
  const values = arr.map(Number);
  const ac = values.slice(1).reduce((sum, v) => sum + v, 0);
  if (!(ac > 0)) return [];
  return pairs(
    values.slice(1).map((value, i) => ({ step: i + 1, value: value / ac })),
    true,
  );
}

/** The comparison of run a (the baseline side) with run b (the SE side). */
export function buildComparison(src: RunReader, aId: string, bId: string): Comparison {
  const A = side(src, aId);
  const B = side(src, bId);
  const warnings: string[] = [];
  if (A.runs.d && !B.runs.d) warnings.push(`${bId} is not a diffusion run: no FD to compare`);
  if (!A.runs.d && B.runs.d) warnings.push(`${aId} is not a diffusion run: no FD to compare`);
  if (A.variant !== "baseline") warnings.push(`run a (${aId}) is not a baseline run`);
  if (B.variant !== "se") warnings.push(`run b (${bId}) is not an SE run`);
  const charts: Chart[] = [];
  let fdInput: { metric: string; baseline: StepValue[]; se: StepValue[] } | null = null;

  const dA = A.runs.d;
  const dB = B.runs.d;
  if (dA && dB) {
    const metric = fdMetric(src, dA, dB);
    if (metric) {
      const pa = src.getMetrics(dA.id, metric);
      const pb = src.getMetrics(dB.id, metric);
      const name = metric.slice("eval/".length);
      fdInput = { metric: name, baseline: pa, se: pb };
      const ea = src.lastEvent(dA.id, "eval");
      const eb = src.lastEvent(dB.id, "eval");
      if (ea?.extractor_hash && eb?.extractor_hash && ea.extractor_hash !== eb.extractor_hash) {
        warnings.push(
          `the runs' ${name} extractors differ (${ea.extractor_hash} vs ${eb.extractor_hash}): the values are not comparable`,
        );
      }
      charts.push({
        id: "fd",
        title: `${name} against diffusion steps (lower is better)`,
        x: { label: "diffusion step" },
        y: { label: name, log: false },
        series: [
          { key: "a", label: label(A, dA), runId: dA.id, points: pairs(pa) },
          { key: "b", label: label(B, dB), runId: dB.id, points: pairs(pb) },
        ],
      });
    }
    const ca = src.getMetrics(dA.id, "eval/class_score");
    const cb = src.getMetrics(dB.id, "eval/class_score");
    if (ca.length || cb.length) {
      charts.push({
        id: "class_score",
        title: "class score against diffusion steps (higher is better)",
        x: { label: "diffusion step" },
        y: { label: "class score", log: false },
        series: [
          { key: "a", label: label(A, dA), runId: dA.id, points: pairs(ca) },
          { key: "b", label: label(B, dB), runId: dB.id, points: pairs(cb) },
        ],
      });
    }
  }

  const aeA = A.runs.ae;
  const aeB = B.runs.ae;
  let psnrInput: { baseline: StepValue[]; se: StepValue[] } | null = null;
  if (aeA && aeB) {
    // The SE run's train/loss includes its SE term; the reconstruction part compares like with like.
    const hasRec =
      src.metricNames(aeA.id).includes("train/loss_rec") &&
      src.metricNames(aeB.id).includes("train/loss_rec");
    const lossName = hasRec ? "train/loss_rec" : "train/loss";
    charts.push({
      id: "ae_loss",
      title: `autoencoder training loss (${lossName.slice(6)})`,
      x: { label: "autoencoder step" },
      y: { label: lossName.slice(6), log: true },
      series: [
        {
          key: "a",
          label: label(A, aeA),
          runId: aeA.id,
          points: pairs(src.getMetrics(aeA.id, lossName), true),
        },
        {
          key: "b",
          label: label(B, aeB),
          runId: aeB.id,
          points: pairs(src.getMetrics(aeB.id, lossName), true),
        },
      ],
      ...(hasRec
        ? { note: "reconstruction loss only: the SE run's total loss adds its SE term" }
        : {}),
    });
    const psA = src.getMetrics(aeA.id, "val/psnr");
    const psB = src.getMetrics(aeB.id, "val/psnr");
    psnrInput = { baseline: psA, se: psB };
    charts.push({
      id: "ae_psnr",
      title: "autoencoder validation PSNR (dB, higher is better)",
      x: { label: "autoencoder step" },
      y: { label: "PSNR (dB)", log: false },
      series: [
        { key: "a", label: label(A, aeA), runId: aeA.id, points: pairs(psA) },
        { key: "b", label: label(B, aeB), runId: aeB.id, points: pairs(psB) },
      ],
    });
  }

  const spectrum = spectrumChart(src, [
    { key: "a", label: `latent · ${aeA?.id ?? "?"}`, run: aeA },
    { key: "b", label: `latent · ${aeB?.id ?? "?"}`, run: aeB },
  ]);
  if (spectrum) charts.push(spectrum);

  const va = lastVal(src, aeA);
  const vb = lastVal(src, aeB);
  const rows = TABLE.map((r) => ({ ...r, a: numberOrNull(va[r.key]), b: numberOrNull(vb[r.key]) }));

  const strip = (s: typeof A): Side => ({
    variant: s.variant,
    diffusion: s.diffusion,
    autoencoder: s.autoencoder,
  });
  return {
    a: strip(A),
    b: strip(B),
    charts,
    table: { columns: [aeA?.id ?? aId, aeB?.id ?? bId], rows },
    summary: summarize({ fd: fdInput, psnr: psnrInput }),
    warnings,
  };
}
