// Configuration, parsed once from the environment with zod. A bad value stops start-up with one
// readable message naming every variable at fault.

import { resolve } from "node:path";
import { z } from "zod";
import { AppError } from "../app-error.ts";
import { defaultThreads, REPO_ROOT } from "../env.ts";
import type { ModelRuntime } from "../pipeline/runtime.ts";
import type { SubmitDeps } from "../pipeline/work/submit-job.ts";
import type { Store } from "../store/store.ts";
import type { WebhookSettings } from "./webhooks.ts";

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

export const ENV_SCHEMA = z.object({
  PORT: int(0, 65535).default(8080),
  HOST: z.string().min(1).default("127.0.0.1"),
  DIFFUSABLE_DATA_DIR: z.string().min(1).default("./data"),
  DIFFUSABLE_MODELS_DIR: z.string().min(1).default("./models"),
  /** Largest request body (multipart uploads included), bytes. */
  DIFFUSABLE_MAX_UPLOAD_BYTES: int(1, 2 ** 40).default(512 * 1024 * 1024),
  /** Most files in one request. */
  DIFFUSABLE_MAX_FILES: int(1, 100_000).default(64),
  /** Most queued + running jobs per API key; beyond it, 429. */
  DIFFUSABLE_MAX_ACTIVE_JOBS: int(1, 100_000).default(8),
  /** Most queued generations (all keys); beyond it, 429 with Retry-After. */
  DIFFUSABLE_MAX_QUEUED_GENERATIONS: int(1, 100_000).default(64),
  /** Jobs the runner runs at the same time. */
  DIFFUSABLE_JOB_CONCURRENCY: int(1, 64).default(2),
  /** Generations run at once; running ones share denoiser calls (src/pipeline/generate/batcher.ts). */
  DIFFUSABLE_GENERATION_CONCURRENCY: int(1, 256).default(8),
  /** Most videos per shared denoiser call (2 rows each with guidance). */
  DIFFUSABLE_GENERATION_BATCH: int(1, 64).default(8),
  /** The bundle POST /v1/generations uses without "model"; unset: the loaded "se" bundle. */
  DIFFUSABLE_DEFAULT_MODEL: z.string().min(1).optional(),
  /** Longest input (video, or what latents decode to) per item, in seconds; beyond it, 422 too_long. */
  DIFFUSABLE_MAX_SECONDS: z.coerce.number().positive().max(86_400).default(900),
  /** Largest frame (width x height, after rounding) of size=native; beyond it, 422 too_large. */
  DIFFUSABLE_MAX_PIXELS: int(64, 8192 * 8192).default(1920 * 1088),
  /** Finished jobs and generations (rows and files) are deleted this many days after they end; 0: kept. */
  DIFFUSABLE_RETENTION_DAYS: z.coerce.number().min(0).max(36_500).default(0),
  /** Signs webhooks (Standard Webhooks): "whsec_<base64>"; unset: requests with `webhook` are 400s. */
  DIFFUSABLE_WEBHOOK_SECRET: z
    .string()
    .regex(
      /^whsec_[A-Za-z0-9+/]{16,}={0,2}$/,
      'must be "whsec_" followed by base64 (16+ characters)',
    )
    .optional(),
  /** Allow webhooks to loopback and private addresses (tests, a receiver on the same host). */
  DIFFUSABLE_WEBHOOK_ALLOW_PRIVATE: z.enum(["0", "1", "true", "false"]).default("0"),
  /** First webhook retry delay, ms (each later one doubles). */
  DIFFUSABLE_WEBHOOK_RETRY_MS: int(10, 3_600_000).default(5000),
  /** onnxruntime threads (0: one per core). */
  DIFFUSABLE_THREADS: int(0, 256).default(0),
  /** Nice value of the model threads and ffmpeg (0..19): batch work yields the cores to HTTP. */
  DIFFUSABLE_WORK_NICE: int(0, 19).default(10),
  /** Model workers as threads of the server or as processes of their own (session-pool.ts). */
  DIFFUSABLE_MODEL_WORKERS: z.enum(["thread", "process"]).default("thread"),
  /** onnxruntime execution providers, comma-separated, in order of preference. */
  DIFFUSABLE_PROVIDERS: z
    .string()
    .default("cpu")
    .transform((s) =>
      s
        .split(",")
        .map((p) => p.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.enum(["cpu", "cuda"])).min(1)),
  /** Where training runs started by the server are written (default <data dir>/runs). */
  DIFFUSABLE_RUNS_DIR: z.string().min(1).optional(),
  /** Run folders under it are imported on start (default docs/results/runs; empty: none). */
  DIFFUSABLE_RUNS_IMPORT_DIR: z.string().optional(),
  /** Signs the admin page's session cookies; unset: a random secret per process. */
  DIFFUSABLE_ADMIN_SECRET: z.string().optional(),
  /** A PostgreSQL database shared by several service processes (jobs, keys, webhooks and the
   * work queue); unset: the embedded SQLite file in the data folder. */
  DIFFUSABLE_DATABASE_URL: z
    .string()
    .refine(isPostgresUrl, "must be a postgres:// or postgresql:// URL with a host")
    .optional(),
  /** With PostgreSQL: a process not heard from for this long is dead and its jobs go to another. */
  DIFFUSABLE_WORKER_TIMEOUT_MS: int(500, 3_600_000).default(30_000),
});

/** postgres://[user[:password]@]host[:port]/database, as node-postgres reads it. */
function isPostgresUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === "postgres:" || url.protocol === "postgresql:") && url.host !== "";
  } catch {
    return false;
  }
}

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  modelsDir: string;
  /** The SQLite file (the default store; with PostgreSQL, the training runs only). */
  dbFile: string;
  /** DIFFUSABLE_DATABASE_URL: PostgreSQL for jobs, keys, webhooks and the work queue; null:
   * the SQLite file. */
  databaseUrl: string | null;
  /** DIFFUSABLE_WORKER_TIMEOUT_MS: after it, a silent process's jobs are taken by another. */
  workerTimeoutMs: number;
  maxUploadBytes: number;
  maxFiles: number;
  maxActiveJobsPerKey: number;
  maxQueuedGenerations: number;
  jobConcurrency: number;
  generationConcurrency: number;
  generationBatch: number;
  /** The generation default bundle, when configured (else the loaded "se" bundle). */
  defaultModel: string | null;
  /** DIFFUSABLE_MAX_SECONDS: the longest input per item. */
  maxSeconds: number;
  /** DIFFUSABLE_MAX_PIXELS: the largest native-size frame, width x height. */
  maxPixels: number;
  /** DIFFUSABLE_RETENTION_DAYS (0: finished work is kept). */
  retentionDays: number;
  /** DIFFUSABLE_WEBHOOK_*: signing secret, private addresses, retry delay. */
  webhooks: WebhookSettings;
  threads: number;
  /** DIFFUSABLE_WORK_NICE: the nice value of model threads and ffmpeg. */
  workNice: number;
  /** DIFFUSABLE_MODEL_WORKERS: the model workers' isolation. */
  modelWorkers: "thread" | "process";
  providers: string[];
  /** Training runs started by the server go to <runsDir>/<run id>/. */
  runsDir: string;
  /** Run folders imported (idempotently) on start; null: none. */
  runsImportDir: string | null;
  /** The admin page's session signing secret (unset: random per process). */
  adminSecret?: string | undefined;
}

export class ConfigError extends AppError {
  override name = "ConfigError";
  constructor(message: string) {
    super("invalid_config", message, 500);
  }
}

/** Variables whose values are secrets. */
const SECRET_VARIABLES = new Set([
  "DIFFUSABLE_WEBHOOK_SECRET",
  "DIFFUSABLE_ADMIN_SECRET",
  // May hold a password.
  "DIFFUSABLE_DATABASE_URL",
]);

export function parseConfig(env: Record<string, string | undefined> = process.env): Config {
  const picked = Object.fromEntries(
    Object.keys(ENV_SCHEMA.shape).map((k) => [k, env[k] === "" ? undefined : env[k]]),
  );
  const parsed = ENV_SCHEMA.safeParse(picked);
  if (!parsed.success) {
    // A secret's value is never echoed (stderr ends up in logs): only its name and length.
    const shown = (name: string) =>
      SECRET_VARIABLES.has(name)
        ? ` (${String(picked[name] ?? "").length} characters, not shown)`
        : `=${JSON.stringify(picked[name])}`;
    const problems = parsed.error.issues.map(
      (i) => `${i.path.join(".")}${shown(String(i.path[0]))}: ${i.message}`,
    );
    throw new ConfigError(`invalid configuration: ${problems.join("; ")}`);
  }
  const e = parsed.data;
  const dataDir = resolve(e.DIFFUSABLE_DATA_DIR);
  return {
    port: e.PORT,
    host: e.HOST,
    dataDir,
    modelsDir: resolve(e.DIFFUSABLE_MODELS_DIR),
    dbFile: resolve(dataDir, "diffusable.sqlite"),
    databaseUrl: e.DIFFUSABLE_DATABASE_URL ?? null,
    workerTimeoutMs: e.DIFFUSABLE_WORKER_TIMEOUT_MS,
    maxUploadBytes: e.DIFFUSABLE_MAX_UPLOAD_BYTES,
    maxFiles: e.DIFFUSABLE_MAX_FILES,
    maxActiveJobsPerKey: e.DIFFUSABLE_MAX_ACTIVE_JOBS,
    maxQueuedGenerations: e.DIFFUSABLE_MAX_QUEUED_GENERATIONS,
    jobConcurrency: e.DIFFUSABLE_JOB_CONCURRENCY,
    generationConcurrency: e.DIFFUSABLE_GENERATION_CONCURRENCY,
    generationBatch: e.DIFFUSABLE_GENERATION_BATCH,
    defaultModel: e.DIFFUSABLE_DEFAULT_MODEL ?? null,
    maxSeconds: e.DIFFUSABLE_MAX_SECONDS,
    maxPixels: e.DIFFUSABLE_MAX_PIXELS,
    retentionDays: e.DIFFUSABLE_RETENTION_DAYS,
    webhooks: {
      secret: e.DIFFUSABLE_WEBHOOK_SECRET ?? null,
      allowPrivate: ["1", "true"].includes(e.DIFFUSABLE_WEBHOOK_ALLOW_PRIVATE),
      retryMs: e.DIFFUSABLE_WEBHOOK_RETRY_MS,
    },
    threads: e.DIFFUSABLE_THREADS || defaultThreads(),
    workNice: e.DIFFUSABLE_WORK_NICE,
    modelWorkers: e.DIFFUSABLE_MODEL_WORKERS,
    providers: e.DIFFUSABLE_PROVIDERS,
    runsDir: resolve(e.DIFFUSABLE_RUNS_DIR ?? resolve(dataDir, "runs")),
    runsImportDir:
      env.DIFFUSABLE_RUNS_IMPORT_DIR === ""
        ? null
        : resolve(e.DIFFUSABLE_RUNS_IMPORT_DIR ?? resolve(REPO_ROOT, "docs/results/runs")),
    adminSecret: e.DIFFUSABLE_ADMIN_SECRET,
  };
}

/** What the submit use case (pipeline/work/submit-job.ts) needs from the settings. */
export function submitDepsOf(db: Store, runtime: ModelRuntime, config: Config): SubmitDeps {
  return {
    db,
    runtime,
    dataDir: config.dataDir,
    defaultModel: config.defaultModel,
    maxActivePerKey: config.maxActiveJobsPerKey,
    maxQueued: config.maxQueuedGenerations,
  };
}

/**
 * Start-up check of DIFFUSABLE_DEFAULT_MODEL: it must name a loaded bundle, else the server does
 * not start (rather than failing every request that relies on the default).
 */
export function checkDefaultModel(runtime: ModelRuntime, config: Config): void {
  if (config.defaultModel === null) return;
  const known = runtime.bundles().map((b) => b.name);
  if (!known.includes(config.defaultModel)) {
    throw new ConfigError(
      `invalid configuration: DIFFUSABLE_DEFAULT_MODEL="${config.defaultModel}" is not a loaded bundle; the bundles in ${config.modelsDir} are: ${known.length ? known.join(", ") : "(none)"}.`,
    );
  }
}
