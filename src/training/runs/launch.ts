// Starting a trainer: the request (zod-validated), the run id and folder, and the Python command
// line (`$DIFFUSABLE_PYTHON -m diffusable.training.train_ae | train_diffusion ...`). The process is spawned
// detached with its output in <folder>/train.log, so it outlives a server restart (which then
// re-attaches to it, registry.ts).

import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { PYTHON, REPO_ROOT, TRAINING_SRC } from "../../env.ts";
import { RUN_ID_PATTERN } from "./run-events.ts";
export const TRAIN_LOG = "train.log";

/** Model presets the trainers know (every architecture's in autoencoders.py; denoiser.py). */
export const AE_CONFIGS = [
  "tiny",
  "small",
  "base",
  "conv-tiny",
  "conv-narrow",
  "conv-small",
  "conv-small-64",
  "conv-base",
] as const;
export const DENOISER_CONFIGS = ["tiny", "small", "compact", "medium", "base"] as const;
/** Autoencoder variants: the SE term each trains with (train_ae.py, VARIANT_MODES). */
export const AE_VARIANTS = ["baseline", "se", "se-spatial"] as const;

const runId = z.string().regex(RUN_ID_PATTERN, "must match [A-Za-z0-9][A-Za-z0-9._-]{0,127}");
const common = {
  /** The run id and folder name; default `<ae|dit>-<config>-<variant>-<UTC time>`. */
  run_id: runId.optional(),
  steps: z.number().int().min(1).max(10_000_000).optional(),
  /** CPU threads for the trainer (0: all cores). */
  threads: z.number().int().min(0).max(256).optional(),
  seed: z
    .number()
    .int()
    .min(0)
    .max(2 ** 31 - 1)
    .optional(),
};

export const StartRunSchema = z.discriminatedUnion("kind", [
  z.strictObject({
    kind: z.literal("autoencoder"),
    config: z.enum(AE_CONFIGS),
    variant: z.enum(AE_VARIANTS),
    ...common,
  }),
  z.strictObject({
    kind: z.literal("diffusion"),
    config: z.enum(DENOISER_CONFIGS),
    /** The finished autoencoder run whose latents it trains on (its variant is the run's). */
    ae_run_id: runId,
    ...common,
  }),
]);
export type StartRunRequest = z.infer<typeof StartRunSchema>;

export function defaultRunId(req: StartRunRequest, variant: string, now = new Date()): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");
  return `${req.kind === "autoencoder" ? "ae" : "dit"}-${req.config}-${variant}-${stamp}`;
}

/** The trainer's argv (after the interpreter) for a run written to `folder`. */
export function trainerArgs(req: StartRunRequest, folder: string, aeFolder?: string): string[] {
  const args =
    req.kind === "autoencoder"
      ? ["-m", "diffusable.training.train_ae", "--config", req.config, "--variant", req.variant]
      : [
          "-m",
          "diffusable.training.train_diffusion",
          "--ae",
          aeFolder as string,
          "--config",
          req.config,
        ];
  args.push("--out", folder);
  if (req.steps !== undefined) args.push("--steps", String(req.steps));
  if (req.threads !== undefined) args.push("--threads", String(req.threads));
  if (req.seed !== undefined) args.push("--seed", String(req.seed));
  return args;
}

/** Spawns the trainer detached, output appended to <folder>/train.log; cwd is the repository. */
export function spawnTrainer(args: string[], folder: string): ChildProcess {
  mkdirSync(folder, { recursive: true });
  const log = openSync(join(folder, TRAIN_LOG), "a");
  try {
    const child = spawn(PYTHON, args, {
      cwd: REPO_ROOT,
      detached: true,
      stdio: ["ignore", log, log],
      env: { ...process.env, PYTHONPATH: TRAINING_SRC, PYTHONUNBUFFERED: "1" },
    });
    child.unref();
    return child;
  } finally {
    closeSync(log);
  }
}
