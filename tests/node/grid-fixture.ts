// Writes tests/node/fixtures/grid-runs: 3 arms (baseline, se, se-spatial) × 3 seeds of small
// diffusion runs of one experiment ("grid-fixture"), in the event shapes the trainer writes
// (config, status started, train, eval at steps 0/100/200/300, checkpoints, status completed).
// Deterministic (no randomness): `npx tsx tests/node/grid-fixture.ts` rewrites the same bytes.
// The values are chosen so that fd_rand3d shows a detectable SE win over the baseline (se lower
// by about 20%, seeds within ±3%), fd_cls3d and val_loss a tie (seeds spread wider than the arms
// differ), and class_score a detectable SE win (higher); se reaches the baseline's final mean
// fd_rand3d at step 200 in two seeds and 300 in one. lfd (the samples' latents against the data's,
// over the noise's distance) shows a detectable SE win too (se about 30% lower).

import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const GRID_RUNS_DIR = join(
  fileURLToPath(new URL(".", import.meta.url)),
  "fixtures/grid-runs",
);
export const GRID_EXPERIMENT = "grid-fixture";
export const GRID_ARMS = ["baseline", "se", "se-spatial"] as const;
export const GRID_SEEDS = [0, 1, 2] as const;
export const GRID_STEPS = [0, 100, 200, 300] as const;

export const CLASSES = [
  "mandelbrot_zoom",
  "game_of_life",
  "cellular_automaton",
  "test_pattern",
  "rotating_gradient",
  "scrolling_chart",
  "sierpinski",
  "bouncing_balls",
  "rotating_polygon",
  "ripples",
  "photo_pan",
  "photo_zoom",
  "photo_rotate",
  "photo_parallax",
  "photo_cutout",
  "photo_drift",
  "photo_shake",
];

/** The final (step 300) values per arm, one per seed. */
export const FINALS: Record<string, Record<string, [number, number, number]>> = {
  baseline: {
    fd_rand3d: [10.0, 10.4, 9.7],
    fd_cls3d: [5.0, 5.6, 4.7],
    class_score: [0.4, 0.44, 0.38],
    val_loss: [0.62, 0.58, 0.66],
    lfd: [0.3, 0.33, 0.28],
  },
  se: {
    fd_rand3d: [8.0, 8.3, 7.9],
    fd_cls3d: [5.2, 4.6, 5.5],
    class_score: [0.52, 0.55, 0.5],
    val_loss: [0.6, 0.65, 0.57],
    lfd: [0.21, 0.24, 0.19],
  },
  "se-spatial": {
    fd_rand3d: [9.0, 9.5, 8.8],
    fd_cls3d: [5.1, 5.3, 4.9],
    class_score: [0.45, 0.41, 0.47],
    val_loss: [0.63, 0.59, 0.61],
    lfd: [0.27, 0.28, 0.25],
  },
};

const START: Record<string, number> = {
  fd_rand3d: 40,
  fd_cls3d: 20,
  class_score: 1 / 17,
  val_loss: 1.5,
  lfd: 1.0,
};

export const runId = (arm: string, seed: number) => `dit-grid-${arm}-s${seed}`;

/** A metric at a step: from START at step 0 to the final at 300, faster for higher seeds. */
export function valueAt(arm: string, metric: string, seed: number, step: number): number {
  const final = FINALS[arm]?.[metric]?.[seed] as number;
  const start = START[metric] as number;
  const left = (1 - step / 300) ** (2 + seed);
  return final + (start - final) * left;
}

function events(arm: string, seed: number, index: number): Record<string, unknown>[] {
  const id = runId(arm, seed);
  const t0 = 1_797_000_000 + index * 2_000;
  const metric = {
    metric: "fd_rand3d",
    extractor: "rand3d",
    extractor_hash: "4600637e43969bb8",
    preprocessing: { frames: 16, size: 64, value_range: "[-1, 1]" },
  };
  const out: Record<string, unknown>[] = [
    {
      type: "config",
      time: t0,
      step: 0,
      run_id: id,
      kind: "diffusion",
      experiment: GRID_EXPERIMENT,
      model: {
        name: "compact",
        latent_channels: 16,
        num_classes: 17,
        patch_t: 1,
        patch_s: 2,
        hidden: 192,
        depth: 6,
        heads: 4,
        mlp_ratio: 4.0,
        label_init_std: 1.0,
      },
      train: {
        steps: 300,
        batch_size: 32,
        lr: 0.0004,
        warmup: 50,
        seed,
        log_every: 50,
        eval_every: 100,
        eval_samples: 128,
        eval_seed: 1234,
        sample_steps: 12,
        sample_method: "euler",
        guidance: 2.0,
      },
      autoencoder: {
        checkpoint: `runs/ae-small-${arm}/checkpoints/last.pt`,
        run_id: `ae-small-${arm}`,
        variant: arm,
        step: 600,
      },
      classes: CLASSES,
      train_latents: 816,
      parameters: 4187392,
      device: "cpu",
      metric,
    },
    { type: "status", time: t0 + 0.001, step: 0, status: "started" },
  ];
  for (const step of GRID_STEPS) {
    if (step > 0) {
      for (const s of [step - 50, step]) {
        out.push({
          type: "train",
          time: t0 + s * 2,
          step: s,
          steps_per_s: 0.5,
          eta_s: (300 - s) * 2,
          lr: 0.0004,
          loss: 2 / (1 + s / 100),
          grad_norm: 0.5,
        });
      }
    }
    const v = (m: string) => valueAt(arm, m, seed, step);
    const valLoss = v("val_loss");
    out.push({
      type: "eval",
      time: t0 + step * 2 + 30,
      step,
      fd_rand3d: v("fd_rand3d"),
      fd_cls3d: v("fd_cls3d"),
      lfd: v("lfd"),
      ...metric,
      n_generated: 128,
      n_real: 128,
      sample_steps: 12,
      guidance: 2.0,
      class_score: v("class_score"),
      val_loss: valLoss,
      val_loss_t0: valLoss * 1.4,
      val_loss_t1: valLoss * 1.2,
      val_loss_t2: valLoss,
      val_loss_t3: valLoss * 0.8,
      val_loss_t4: valLoss * 0.6,
      eval_s: 30.0,
    });
    if (step > 0) {
      out.push({
        type: "checkpoint",
        time: t0 + step * 2 + 31,
        step,
        path: "checkpoints/last.pt",
        final: false,
      });
    }
  }
  out.push(
    { type: "checkpoint", time: t0 + 632, step: 300, path: "checkpoints/last.pt", final: true },
    {
      type: "status",
      time: t0 + 632.001,
      step: 300,
      status: "completed",
      fd_rand3d: valueAt(arm, "fd_rand3d", seed, 300),
      class_score: valueAt(arm, "class_score", seed, 300),
    },
  );
  return out;
}

/** Writes every run folder (removing the old ones) and returns the run ids. */
export function writeGridFixture(dir = GRID_RUNS_DIR): string[] {
  rmSync(dir, { recursive: true, force: true });
  const ids: string[] = [];
  let index = 0;
  for (const arm of GRID_ARMS) {
    for (const seed of GRID_SEEDS) {
      const id = runId(arm, seed);
      mkdirSync(join(dir, id), { recursive: true });
      const lines = events(arm, seed, index++).map((e) => JSON.stringify(e));
      writeFileSync(join(dir, id, "events.jsonl"), `${lines.join("\n")}\n`);
      ids.push(id);
    }
  }
  return ids;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  console.log(writeGridFixture().join("\n"));
}
