// The run logs behind the shipped bundles (docs/results/runs, imported on every start): each one
// imports with no rejected line, the fine-tunes name the pre-train they started from, each
// shipped bundle's denoiser run links to its bundle's autoencoder run, and no log names a path of
// the machine that made it.

import assert from "node:assert/strict";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { closeDb, type Db, openDb } from "../../src/store/db.ts";
import { importRunFolder } from "../../src/training/runs/run-import.ts";
import { diffusionRunsOf, getRun } from "../../src/training/runs/run-store.ts";
import { REPO_ROOT } from "./python.ts";
import { tempDir } from "./server-helpers.ts";

const RUNS = join(REPO_ROOT, "docs/results/runs");
const names = readdirSync(RUNS).sort();
/** A run log's first event: its config. */
const configOf = (name: string) =>
  JSON.parse(readFileSync(join(RUNS, name, "events.jsonl"), "utf8").split("\n")[0] as string);
let dir: string;
let db: Db;

before(() => {
  dir = tempDir("shipped-runs");
  db = openDb(join(dir, "db.sqlite"));
});
after(() => {
  closeDb(db);
  rmSync(dir, { recursive: true, force: true });
});

test("every shipped run log imports whole", () => {
  for (const name of [
    "ae-conv-small-gpu-pretrain", // the shipped autoencoders (H200, session 12)
    "ae-conv-small-gpu-baseline",
    "ae-conv-small-gpu-se",
    "ae-conv-small-gpu-se-spatial",
    "ae-conv-small-gpu-baseline-dec", // their decoders fine-tuned on the CPU (session 13)
    "ae-conv-small-gpu-se-dec",
    "dit-compact-gpu-baseline-cpu", // and their denoisers
    "dit-compact-gpu-se-cpu",
    "dit-compact-gpu-baseline-cpu2", // continued from their recovered weights (session 14)
    "dit-compact-gpu-se-cpu2",
    "dit-medium-baseline", // DiT medium, with context (session 17)
    "dit-medium-se",
    "dit-medium-data-baseline", // medium continued on 5x the clips (session 18)
    "dit-medium-data-se",
    "dit-medium-data2-baseline", // the shipped denoisers: those continued again (session 19)
    "dit-medium-data2-se",
    "dit-compact-gpu-grid-baseline-s0", // the seed grid on the shipped latents (session 14)
    "dit-compact-gpu-grid-se-s2",
    "ae-conv-small-gpu-se-spatial-stage2", // the grid's se-spatial arm and its control (session 21)
    "ae-conv-small-gpu-baseline-stage2",
    "dit-compact-gpu-stage2-se-spatial-s0",
    "dit-compact-gpu-stage2-baseline-s2",
    "ae-conv-small-pretrain", // the CPU protocol they replaced
    "ae-conv-small-baseline",
    "ae-conv-small-se",
    "ae-conv-small-se-spatial",
    "ae-small-pretrain", // the PCA-residual protocol the conv VAE replaced, kept for comparison
    "ae-small-se",
  ]) {
    assert.ok(names.includes(name), `docs/results/runs lacks ${name}`);
  }
  for (const name of names) {
    const r = importRunFolder(db, join(RUNS, name));
    assert.deepEqual(r.rejected, [], `${name}: rejected lines`);
    assert.ok(r.accepted > 5, `${name}: only ${r.accepted} events`);
    assert.equal(getRun(db, name)?.status, "finished", `${name} is not finished`);
  }
});

test("the fine-tunes start from the pre-train; each bundle's denoiser run uses its autoencoder", () => {
  for (const prefix of ["ae-conv-small-gpu", "ae-conv-small", "ae-small"]) {
    for (const variant of ["baseline", "se", "se-spatial"]) {
      const config = configOf(`${prefix}-${variant}`);
      assert.equal(config.init.run_id, `${prefix}-pretrain`);
      assert.equal(config.variant, variant);
    }
  }
  for (const variant of ["baseline", "se"]) {
    // The shipped decoders are decoder-only fine-tunes of the H200 fine-tunes: same latents.
    const config = configOf(`ae-conv-small-gpu-${variant}-dec`);
    assert.equal(config.init.run_id, `ae-conv-small-gpu-${variant}`);
    assert.equal(config.variant, variant);
    assert.equal(config.train.train_encoder, false);
    assert.deepEqual(config.latents_from, config.init);
    const manifest = JSON.parse(
      readFileSync(join(REPO_ROOT, "models", `small-${variant}`, "manifest.json"), "utf8"),
    );
    assert.equal(manifest.runs.autoencoder.id, `ae-conv-small-gpu-${variant}-dec`);
    assert.deepEqual(manifest.runs.autoencoder.latents_from, config.init);
    // The denoiser was trained on the latents the bundle's autoencoder keeps: on the run that
    // made them, or on a decoder fine-tune of it (same encoder, so the same latents).
    const ae = manifest.runs.autoencoder.latents_from.run_id as string;
    const dec = manifest.runs.autoencoder.id as string;
    const ids = [...diffusionRunsOf(db, ae), ...diffusionRunsOf(db, dec)].map((r) => r.id);
    assert.ok(ids.includes(manifest.runs.diffusion.id), `${ae} / ${dec}: ${ids}`);
    const dit = configOf(manifest.runs.diffusion.id);
    if (dit.autoencoder.run_id === dec) {
      assert.deepEqual(dit.autoencoder.latents_from, manifest.runs.autoencoder.latents_from);
    }
  }
});

test("the seed grid's runs are all here, each on its arm's autoencoder with its seed", () => {
  const grid = JSON.parse(
    readFileSync(join(REPO_ROOT, "docs/results/protocol-k3/grid-k3/grid.json"), "utf8"),
  ) as { experiment: string; arms: string[]; seeds: number[]; runs: GridRun[] };
  assert.equal(grid.runs.length, grid.arms.length * grid.seeds.length);
  assert.ok(grid.seeds.length >= 3 && grid.arms.includes("se-spatial"));
  for (const run of grid.runs) {
    assert.equal(run.rc, 0, `${run.id} failed`);
    const config = configOf(run.id);
    assert.equal(config.experiment, grid.experiment);
    assert.equal(config.train.seed, run.seed);
    assert.equal(config.autoencoder.run_id, `ae-small-${run.arm}`);
    assert.equal(getRun(db, run.id)?.autoencoderRunId, `ae-small-${run.arm}`);
  }
});

test("the stage-2 pair differs by the SE term alone; its grid repeats grid-gpu's recipe by seed", () => {
  const se = configOf("ae-conv-small-gpu-se-spatial-stage2");
  const control = configOf("ae-conv-small-gpu-baseline-stage2");
  for (const c of [se, control]) {
    assert.deepEqual(c.init, { run_id: "ae-conv-small-gpu-baseline", step: 740 });
  }
  assert.equal(se.variant, "se-spatial");
  assert.equal(control.variant, "baseline");
  assert.ok(se.train.se_weight > 0 && control.train.se_weight === 0);
  assert.deepEqual({ ...se.train, se_weight: 0 }, control.train);
  assert.deepEqual(se.model, control.model);
  for (const seed of [0, 1, 2]) {
    const reference = configOf(`dit-compact-gpu-grid-baseline-s${seed}`);
    for (const [arm, ae] of [
      ["se-spatial", "ae-conv-small-gpu-se-spatial-stage2"],
      ["baseline", "ae-conv-small-gpu-baseline-stage2"],
    ]) {
      const dit = configOf(`dit-compact-gpu-stage2-${arm}-s${seed}`);
      assert.equal(dit.experiment, "grid-gpu-stage2");
      assert.equal(dit.autoencoder.run_id, ae);
      assert.equal(getRun(db, dit.run_id)?.autoencoderRunId, ae);
      assert.deepEqual(dit.train, reference.train, `${arm} s${seed}: grid-gpu's recipe and seed`);
      assert.deepEqual(dit.model, reference.model);
    }
  }
});

interface GridRun {
  id: string;
  arm: string;
  seed: number;
  rc: number;
}

test("no shipped log names an absolute path", () => {
  for (const name of names) {
    const text = readFileSync(join(RUNS, name, "events.jsonl"), "utf8");
    assert.doesNotMatch(text, /"\/(work|home|tmp|root|usr)\//, name);
  }
});
