// The Hono app: public /healthz and /openapi.json, bearer-keyed /v1 routes, one error handler.
// Built from its dependencies so tests can run it through app.request() on their own data dir.

import { Hono } from "hono";
import type { ModelRuntime } from "../pipeline/runtime.ts";
import type { GenerationRunner } from "../pipeline/work/generation-runner.ts";
import type { JobRunner } from "../pipeline/work/job-runner.ts";
import type { Db } from "../store/db.ts";
import { RunRegistry } from "../training/runs/registry.ts";
import type { RunReader } from "../training/runs/run-compare.ts";
import { storeRunReader } from "../training/runs/run-reader.ts";
import { notFoundOrNotAllowed, onError } from "./api-error.ts";
import { type AppEnv, requireKey } from "./auth.ts";
import { type Config, checkDefaultModel } from "./config.ts";
import { openApiDocument } from "./openapi.ts";
import { adminRoutes } from "./routes/admin.ts";
import { adminPageRoutes } from "./routes/admin-page.ts";
import { generationRoutes } from "./routes/generations.ts";
import { jobRoutes } from "./routes/jobs.ts";
import { runRoutes } from "./routes/runs.ts";
import { DecodeOptionsSchema, EncodeOptionsSchema, ReconstructOptionsSchema } from "./schemas.ts";

export interface AppDeps {
  db: Db;
  runtime: ModelRuntime;
  runner: JobRunner;
  /** Generation jobs; without it /v1/generations is not served. */
  generations?: GenerationRunner;
  config: Config;
  /** Training runs (start, import, follow); default: one on config.runsDir, not started. */
  registry?: RunRegistry;
  /** The run registry as the admin page reads it (default: the registry in `db`). */
  runs?: RunReader;
}

export function createApp(deps: AppDeps) {
  const started = Date.now();
  const { db, runtime, runner } = deps;
  checkDefaultModel(runtime, deps.config);
  const v1 = new Hono<AppEnv>()
    .use(requireKey(db))
    .get("/models", (c) => c.json({ models: runtime.bundles() }))
    .route(
      "/encodings",
      jobRoutes(deps, {
        kind: "encode",
        path: "encodings",
        options: EncodeOptionsSchema,
        input: "video",
      }),
    )
    .route(
      "/decodings",
      jobRoutes(deps, {
        kind: "decode",
        path: "decodings",
        options: DecodeOptionsSchema,
        input: "npy",
      }),
    )
    .route(
      "/reconstructions",
      jobRoutes(deps, {
        kind: "reconstruct",
        path: "reconstructions",
        options: ReconstructOptionsSchema,
        input: "video",
      }),
    )
    .route("/admin", adminRoutes(db))
    .route(
      "/runs",
      runRoutes({
        db,
        registry: deps.registry ?? new RunRegistry({ db, runsDir: deps.config.runsDir }),
      }),
    );
  if (deps.generations) {
    v1.route(
      "/generations",
      generationRoutes({ db, runtime, generations: deps.generations, config: deps.config }),
    );
  }

  const app = new Hono<AppEnv>()
    .get("/healthz", (c) =>
      c.json({
        status: "ok" as const,
        uptimeSeconds: Math.round((Date.now() - started) / 1000),
        jobsRunning: runner.running,
      }),
    )
    .get("/openapi.json", (c) => c.json(openApiDocument()))
    .route("/v1", v1)
    .route(
      "/admin",
      adminPageRoutes({
        db,
        runtime,
        generations: deps.generations,
        config: deps.config,
        runs: deps.runs ?? storeRunReader(db),
      }),
    );
  app.onError(onError);
  app.notFound(notFoundOrNotAllowed(() => app.routes));
  return app;
}

export type App = ReturnType<typeof createApp>;
