// The Hono app: public /healthz and /openapi.json, bearer-keyed /v1 routes, one error handler.
// Built from its dependencies so tests can run it through app.request() on their own data dir.

import { $ } from "@hono/zod-openapi";
import type { ModelRuntime } from "../pipeline/runtime.ts";
import { JOB_KINDS } from "../pipeline/work/job-kinds.ts";
import type { JobRunner } from "../pipeline/work/job-runner.ts";
import type { Db } from "../store/db.ts";
import type { Store } from "../store/store.ts";
import { RunRegistry } from "../training/runs/registry.ts";
import type { RunReader } from "../training/runs/run-compare.ts";
import { storeRunReader } from "../training/runs/run-reader.ts";
import { notFoundOrNotAllowed, onError } from "./api-error.ts";
import { requireKey } from "./auth.ts";
import { type Config, checkDefaultModel } from "./config.ts";
import { documentedRoutes, jsonResponse, openApiDocument, route } from "./openapi.ts";
import { adminRoutes } from "./routes/admin.ts";
import { adminPageRoutes } from "./routes/admin-page.ts";
import { jobResourceRoutes } from "./routes/job-resource.ts";
import { runRoutes } from "./routes/runs.ts";
import { HealthSchema, ModelsSchema } from "./schemas.ts";

export interface AppDeps {
  /** Jobs, API keys and webhooks: the SQLite file or PostgreSQL (open-store.ts). */
  store: Store;
  /** The SQLite file: training runs. */
  db: Db;
  runtime: ModelRuntime;
  /** Runs the jobs of every resource (pipeline/work/job-kinds.ts). */
  runner: JobRunner;
  config: Config;
  /** Training runs (start, import, follow); default: one on config.runsDir, not started. */
  registry?: RunRegistry;
  /** The run registry as the admin page reads it (default: the registry in `db`). */
  runs?: RunReader;
}

export function createApp(deps: AppDeps) {
  const started = Date.now();
  const { store, db, runtime, runner } = deps;
  checkDefaultModel(runtime, deps.config);
  const v1 = $(documentedRoutes().use(requireKey(store)))
    .openapi(
      route({
        method: "get",
        path: "/models",
        responses: { 200: jsonResponse(ModelsSchema, "loaded bundles") },
      }),
      (c) => c.json({ models: runtime.bundles() }, 200),
    )
    .route("/admin", adminRoutes(store))
    .route(
      "/runs",
      runRoutes({
        db,
        registry: deps.registry ?? new RunRegistry({ db, runsDir: deps.config.runsDir }),
      }),
    );
  // One resource per kind of job, all from one route factory.
  for (const kind of JOB_KINDS) {
    v1.route(
      `/${kind.resource}`,
      jobResourceRoutes({ db: store, runtime, runner, config: deps.config }, kind),
    );
  }

  let document: ReturnType<typeof openApiDocument> | null = null;
  const app = documentedRoutes()
    .openapi(
      route({
        method: "get",
        path: "/healthz",
        security: [],
        responses: { 200: jsonResponse(HealthSchema, "alive") },
      }),
      (c) =>
        c.json(
          {
            status: "ok" as const,
            uptimeSeconds: Math.round((Date.now() - started) / 1000),
            jobsRunning: runner.running,
          },
          200,
        ),
    )
    .openapi(
      route({
        method: "get",
        path: "/openapi.json",
        security: [],
        operationId: "getOpenApi",
        responses: { 200: { description: "this document" } },
      }),
      // Made on the first request, once every route is mounted.
      (c): Response => {
        document ??= openApiDocument(app);
        return c.json(document);
      },
    )
    .route("/v1", v1)
    .route(
      "/admin",
      adminPageRoutes({
        db: store,
        runtime,
        runner,
        config: deps.config,
        runs: deps.runs ?? storeRunReader(db),
      }),
    );
  app.onError(onError);
  app.notFound(notFoundOrNotAllowed(() => app.routes));
  return app;
}

export type App = ReturnType<typeof createApp>;
