// Training runs (docs/runs.md): GET / (newest first, paginated), GET /:id (the run, its metric
// names, artifacts and linked runs), GET /:id/metrics?name=; admin keys only: POST / (start a
// trainer, 202) and POST /import ({path} of a run folder the server can read).

import { createMiddleware } from "hono/factory";
import { z } from "zod";
import type { Db } from "../../store/db.ts";
import { RUN_KINDS, RUN_STATUSES, type RunRow } from "../../store/schema.ts";
import { StartRunSchema } from "../../training/runs/launch.ts";
import type { RunRegistry } from "../../training/runs/registry.ts";
import { storeRunRows } from "../../training/runs/run-reader.ts";
import { publicRun } from "../../training/runs/run-store.ts";
import { ApiError } from "../api-error.ts";
import { type AppEnv, requireAdmin } from "../auth.ts";
import {
  documentedRoutes,
  errorResponses,
  IdParams,
  jsonRequestBody,
  jsonResponse,
  route,
} from "../openapi.ts";
import { redactPaths } from "../redact.ts";
import {
  describeZodError,
  MetricsSchema,
  RunDetailSchema,
  RunEnvelopeSchema,
  RunImportSchema,
  RunListSchema,
} from "../schemas.ts";

/** Runs without their trainer's pid (a user key has no use for it). */
function hidePids<T>(body: T): T {
  if (Array.isArray(body)) return body.map(hidePids) as T;
  if (body !== null && typeof body === "object") {
    return Object.fromEntries(
      Object.entries(body).map(([k, v]) => (k === "pid" ? [k, null] : [k, hidePids(v)])),
    ) as T;
  }
  return body;
}

export const ListRunsQuerySchema = z.strictObject({
  kind: z.enum(RUN_KINDS).optional(),
  status: z.enum(RUN_STATUSES).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  before: z.string().optional().meta({
    description: "a run id (from `next`): list the runs after it (older), as on every list",
  }),
  cursor: z.string().optional().meta({ description: "deprecated: the old name of `before`" }),
});

export const MetricsQuerySchema = z.object({
  name: z
    .string({ error: "required: a metric name such as train/loss or eval/fd_rand3d" })
    .min(1)
    .meta({ description: "`<event type>/<field>`, e.g. val/psnr, eval/fd_rand3d" }),
});

export const ImportRunSchema = z.strictObject({
  path: z.string().min(1).meta({ description: "a run folder holding events.jsonl, on the server" }),
});

export { StartRunSchema };

/** The JSON body, checked by its schema: 400 invalid_json, or 400 invalid_field naming the field. */
async function jsonBody<T>(c: { req: { json(): Promise<unknown> } }, schema: z.ZodType<T>) {
  let body: unknown;
  try {
    body = await c.req.json();
  } catch (err) {
    throw new ApiError("invalid_json", `the body is not JSON: ${(err as Error).message}`, 400);
  }
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw new ApiError("invalid_field", describeZodError(parsed.error), 400);
  return parsed.data;
}

export function runRoutes(deps: { db: Db; registry: RunRegistry }) {
  const { db, registry } = deps;
  const rows = storeRunRows(db);
  const app = documentedRoutes();

  const found = (id: string): RunRow => {
    const run = rows.get(id);
    if (!run) throw new ApiError("not_found", `There is no run ${JSON.stringify(id)}.`, 404);
    return run;
  };
  /** c.var.run: the run of the path's id (404 before its query is checked). */
  const loadRun = createMiddleware<{ Variables: { run: RunRow } }>(async (c, next) => {
    c.set("run", found(c.req.param("id") as string));
    await next();
  });

  const runJson = (run: RunRow) => ({ ...publicRun(run), live: registry.isLive(run.id) });
  /** Admin keys see the server's paths; user keys never do (redact.ts), nor trainer pids. */
  const forKey = <T>(c: { var: AppEnv["Variables"] }, body: T): T =>
    c.var.apiKey.role === "admin" ? body : redactPaths(hidePids(body));

  app.openapi(
    route({
      method: "get",
      path: "/",
      tags: ["runs"],
      request: { query: ListRunsQuerySchema },
      responses: {
        200: jsonResponse(RunListSchema, "training runs, newest first; `next`: the next page"),
        ...errorResponses(400),
      },
    }),
    (c) => {
      const query = c.req.valid("query");
      const { kind, status, limit } = query;
      const cursor = query.before ?? query.cursor;
      const field = query.before !== undefined ? "before" : "cursor";
      if (cursor !== undefined && !rows.get(cursor)) {
        throw new ApiError(
          "invalid_field",
          `${field}: there is no run ${JSON.stringify(cursor)}.`,
          400,
        );
      }
      const page = rows.list({
        limit,
        ...(kind ? { kind } : {}),
        ...(status ? { status } : {}),
        ...(cursor !== undefined ? { cursor } : {}),
      });
      const next = new URLSearchParams({ limit: String(limit) });
      if (kind) next.set("kind", kind);
      if (status) next.set("status", status);
      if (page.nextCursor) next.set("before", page.nextCursor);
      return c.json(
        {
          runs: forKey(c, page.runs.map(runJson)),
          next: page.nextCursor ? `/v1/runs?${next}` : null,
        },
        200,
      );
    },
  );

  app.openapi(
    route({
      method: "post",
      path: "/",
      tags: ["runs"],
      description:
        "admin keys only: start a trainer (autoencoder, or diffusion on a finished AE run)",
      middleware: requireAdmin,
      request: { body: jsonRequestBody(app, "StartRun", StartRunSchema) },
      responses: {
        202: jsonResponse(RunEnvelopeSchema, "the run, status running"),
        ...errorResponses(400, 403, 404, 409),
      },
    }),
    async (c) => {
      const run = registry.startRun(await jsonBody(c, StartRunSchema));
      c.header("Location", `/v1/runs/${run.id}`);
      return c.json({ run: runJson(run) }, 202);
    },
  );

  app.openapi(
    route({
      method: "post",
      path: "/{id}/stop",
      tags: ["runs"],
      operationId: "stopRun",
      description:
        "admin keys only: SIGTERM to a live run's trainer; it is settled as interrupted and can be resumed from its last checkpoint",
      middleware: requireAdmin,
      request: { params: IdParams },
      responses: {
        202: jsonResponse(RunEnvelopeSchema, "still running until the trainer exits"),
        ...errorResponses(403, 404, 409),
      },
    }),
    (c) => c.json({ run: runJson(registry.stopRun(c.req.valid("param").id)) }, 202),
  );

  app.openapi(
    route({
      method: "post",
      path: "/import",
      tags: ["runs"],
      operationId: "importRun",
      description:
        "admin keys only: import a run folder (events.jsonl) the server can read; idempotent",
      middleware: requireAdmin,
      request: { body: jsonRequestBody(app, "ImportRun", ImportRunSchema) },
      responses: {
        200: jsonResponse(RunImportSchema, "every valid event is kept; rejected lines are listed"),
        ...errorResponses(400, 403, 404, 409),
      },
    }),
    async (c) => {
      const r = registry.importFolder((await jsonBody(c, ImportRunSchema)).path);
      return c.json(
        { run: runJson(r.run), accepted: r.accepted, added: r.added, rejected: r.rejected },
        200,
      );
    },
  );

  app.openapi(
    route({
      method: "get",
      path: "/{id}",
      tags: ["runs"],
      middleware: loadRun,
      request: { params: IdParams },
      responses: {
        200: jsonResponse(RunDetailSchema, "the run, its metric names, artifacts, linked runs"),
        ...errorResponses(404),
      },
    }),
    (c) => {
      const run = c.var.run;
      const ae = run.autoencoderRunId ? rows.get(run.autoencoderRunId) : null;
      return c.json(
        forKey(c, {
          run: runJson(run),
          metrics: rows.metricNames(run.id),
          artifacts: rows.artifacts(run.id).map(({ runId: _, ...a }) => a),
          lastStatus: rows.lastEvent(run.id, "status"),
          /** The autoencoder run a diffusion run was trained on (null when not in the registry). */
          autoencoder: ae ? runJson(ae) : null,
          /** The diffusion runs trained on an autoencoder run. */
          diffusionRuns:
            run.kind === "autoencoder" ? rows.diffusionRunsOf(run.id).map(runJson) : [],
        }),
        200,
      );
    },
  );

  app.openapi(
    route({
      method: "get",
      path: "/{id}/metrics",
      tags: ["runs"],
      middleware: loadRun,
      request: { params: IdParams, query: MetricsQuerySchema },
      responses: {
        200: jsonResponse(MetricsSchema, "points by step"),
        ...errorResponses(400, 404),
      },
    }),
    (c) => {
      const run = c.var.run;
      const { name } = c.req.valid("query");
      const points = rows.metrics(run.id, name);
      if (points.length === 0) {
        throw new ApiError(
          "metric_not_found",
          `name: run ${run.id} has no metric ${JSON.stringify(name)} (it has: ${rows.metricNames(run.id).join(", ") || "none"})`,
          404,
        );
      }
      return c.json({ run: run.id, name, points }, 200);
    },
  );

  return app;
}
