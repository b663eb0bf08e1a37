// The admin page tests' fixtures: real recorded runs (tests/node/fixtures/recorded-runs: the
// first shipped bundles' training logs, kept as test data; two autoencoders, two
// diffusion runs) and a RunReader read straight from their events.jsonl files, so the comparison
// can be checked against values computed here independently of the registry.

import {
  copyFileSync,
  cpSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import type { Db } from "../../src/store/db.ts";
import type { RunInfo, RunKind, RunReader } from "../../src/training/runs/run-compare.ts";
import { importRunFolder } from "../../src/training/runs/run-import.ts";
import type { StepValue } from "../../src/training/runs/run-summary.ts";
import { GRID_RUNS_DIR } from "./grid-fixture.ts";
import { fixtureBundle } from "./media.ts";
import { REPO_ROOT } from "./python.ts";

export const RUNS_DIR = join(REPO_ROOT, "tests/node/fixtures/recorded-runs");
/** The se-spatial autoencoder run of the shipped logs: the third arm's AE beside the fixtures. */
export const SE_SPATIAL_AE_DIR = join(REPO_ROOT, "docs/results/runs/ae-small-se-spatial");
export const FIXTURE_RUNS = [
  "ae-small-baseline",
  "ae-small-se",
  "dit-small-baseline",
  "dit-small-se",
];

export type Event = Record<string, unknown> & { type: string; step: number; time: number };

export function readEvents(runId: string, dir = RUNS_DIR): Event[] {
  return readFileSync(join(dir, runId, "events.jsonl"), "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Event);
}

/** `<type>/<field>` histories of the numeric fields, as the registry names them. */
export function metricsOf(events: Event[]): Map<string, StepValue[]> {
  const out = new Map<string, StepValue[]>();
  for (const e of events) {
    if (e.type === "config") continue;
    for (const [k, v] of Object.entries(e)) {
      if (k === "type" || k === "time" || k === "step" || typeof v !== "number") continue;
      const name = `${e.type}/${k}`;
      if (!out.has(name)) out.set(name, []);
      out.get(name)?.push({ step: e.step, value: v });
    }
  }
  return out;
}

/** A RunReader over the events files (newest first = latest config time first). */
export function fileRunReader(ids: string[] = FIXTURE_RUNS): RunReader {
  const runs = new Map<
    string,
    { info: RunInfo; events: Event[]; metrics: Map<string, StepValue[]> }
  >();
  for (const id of ids) {
    const events = readEvents(id);
    const config = events.find((e) => e.type === "config") as Event;
    const ae = config.autoencoder as { run_id?: string; variant?: string } | undefined;
    const last = events.filter((e) => e.type === "status").at(-1);
    runs.set(id, {
      info: {
        id,
        kind: config.kind as RunKind,
        variant: (config.variant as string | undefined) ?? ae?.variant ?? null,
        status: (last?.status as string | undefined) ?? "unknown",
        autoencoderRunId: ae?.run_id ?? null,
        config,
        createdAt: Math.round(config.time * 1000),
      },
      events,
      metrics: metricsOf(events),
    });
  }
  return {
    listRuns: (opts = {}) =>
      [...runs.values()]
        .map((r) => r.info)
        .filter((r) => !opts.kind || r.kind === opts.kind)
        .sort((x, y) => y.createdAt - x.createdAt)
        .slice(0, opts.limit ?? 100),
    getRun: (id) => runs.get(id)?.info ?? null,
    metricNames: (id) => [...(runs.get(id)?.metrics.keys() ?? [])],
    getMetrics: (id, name) => runs.get(id)?.metrics.get(name) ?? [],
    lastEvent: (id, type) =>
      runs
        .get(id)
        ?.events.filter((e) => e.type === type)
        .at(-1) ?? null,
  };
}

/** Synthetic stand-ins for the autoencoder evaluation's latent-channels.png of the two fixture
 * autoencoders (8 channels × 5 latent frames of 8×8, upscaled): test data, not a result. */
export const LATENT_CHANNELS_DIR = join(REPO_ROOT, "tests/node/fixtures/latent-channels");
export const PICTURE_RUNS = ["ae-small-baseline", "ae-small-se"];

/** Imports the four fixture runs into the registry through the registry's own importer. With
 * `pictures` (a folder), the two autoencoders are imported from copies made there that hold the
 * fixture latent-channels.png, as the autoencoder evaluation leaves it in a run folder. */
export function importFixtureRuns(db: Db, opts: { pictures?: string } = {}): void {
  for (const id of FIXTURE_RUNS) {
    let folder = join(RUNS_DIR, id);
    if (opts.pictures && PICTURE_RUNS.includes(id)) {
      const copy = join(opts.pictures, id);
      cpSync(folder, copy, { recursive: true });
      copyFileSync(join(LATENT_CHANNELS_DIR, `${id}.png`), join(copy, "latent-channels.png"));
      folder = copy;
    }
    importRunFolder(db, folder);
  }
}

/** Imports the grid fixture (3 arms × 3 seeds, tests/node/fixtures/grid-runs) and the shipped
 * se-spatial autoencoder run, beside the recorded runs, through the registry's importer. */
export function importGridRuns(db: Db): void {
  for (const id of readdirSync(GRID_RUNS_DIR).sort()) importRunFolder(db, join(GRID_RUNS_DIR, id));
  importRunFolder(db, SE_SPATIAL_AE_DIR);
}

/** A models dir under `parent` with the tiny fixture bundle (tiny-fixture, as the server helpers
 * want) and two copies whose manifests name the fixture runs: fx-baseline (ae/dit-small-baseline)
 * and fx-se (ae/dit-small-se). With `seDenoiser: false`, fx-se has no denoiser.onnx. */
export function adminModelsDir(parent: string, opts: { seDenoiser?: boolean } = {}): string {
  const models = join(parent, "models");
  mkdirSync(models, { recursive: true });
  cpSync(fixtureBundle(), join(models, "tiny-fixture"), { recursive: true });
  for (const variant of ["baseline", "se"]) {
    const dir = join(models, `fx-${variant}`);
    cpSync(fixtureBundle(), dir, { recursive: true });
    const file = join(dir, "manifest.json");
    const m = JSON.parse(readFileSync(file, "utf8"));
    m.variant = variant;
    m.runs = {
      autoencoder: { run_id: `ae-small-${variant}` },
      diffusion: { run_id: `dit-small-${variant}` },
    };
    if (variant === "se" && opts.seDenoiser === false) {
      delete m.onnx.denoiser;
      delete m.files["denoiser.onnx"];
      rmSync(join(dir, "denoiser.onnx"));
    }
    writeFileSync(file, JSON.stringify(m, null, 2));
  }
  return models;
}
