// Training runs (docs/runs.md): GET / (newest first, paginated), GET /:id (the run, its metric
// names, artifacts and linked runs), GET /:id/metrics?name=; admin keys only: POST / (start a
// trainer, 202) and POST /import ({path} of a run folder the server can read).

import { Hono } from "hono";
import { z } from "zod";
import type { Db } from "../../store/db.ts";
import { RUN_KINDS, RUN_STATUSES, type RunRow } from "../../store/schema.ts";
import { StartRunSchema } from "../../training/runs/launch.ts";
import type { RunRegistry } from "../../training/runs/registry.ts";
import { storeRunRows } from "../../training/runs/run-reader.ts";
import { publicRun } from "../../training/runs/run-store.ts";
import { ApiError } from "../api-error.ts";
import { type AppEnv, requireAdmin } from "../auth.ts";
import { redactPaths } from "../redact.ts";
import { describeZodError } from "../schemas.ts";

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

async function jsonBody(c: { req: { json(): Promise<unknown> } }): Promise<unknown> {
  try {
    return await c.req.json();
  } catch (err) {
    throw new ApiError("invalid_json", `the body is not JSON: ${(err as Error).message}`, 400);
  }
}

export function runRoutes(deps: { db: Db; registry: RunRegistry }) {
  const { db, registry } = deps;
  const rows = storeRunRows(db);
  const app = new Hono<AppEnv>();

  const found = (id: string): RunRow => {
    const run = rows.get(id);
    if (!run) throw new ApiError("not_found", `There is no run ${JSON.stringify(id)}.`, 404);
    return run;
  };

  const runJson = (run: RunRow) => ({ ...publicRun(run), live: registry.isLive(run.id) });
  /** Admin keys see the server's paths; user keys never do (redact.ts), nor trainer pids. */
  const forKey = <T>(c: { var: AppEnv["Variables"] }, body: T): T =>
    c.var.apiKey.role === "admin" ? body : redactPaths(hidePids(body));

  app.get("/", (c) => {
    const parsed = ListRunsQuerySchema.safeParse(c.req.query());
    if (!parsed.success) throw new ApiError("invalid_field", describeZodError(parsed.error), 400);
    const { kind, status, limit } = parsed.data;
    const cursor = parsed.data.before ?? parsed.data.cursor;
    const field = parsed.data.before !== undefined ? "before" : "cursor";
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
    const query = new URLSearchParams({ limit: String(limit) });
    if (kind) query.set("kind", kind);
    if (status) query.set("status", status);
    if (page.nextCursor) query.set("before", page.nextCursor);
    return c.json({
      runs: forKey(c, page.runs.map(runJson)),
      next: page.nextCursor ? `/v1/runs?${query}` : null,
    });
  });

  app.post("/", requireAdmin, async (c) => {
    const parsed = StartRunSchema.safeParse(await jsonBody(c));
    if (!parsed.success) throw new ApiError("invalid_field", describeZodError(parsed.error), 400);
    const run = registry.startRun(parsed.data);
    c.header("Location", `/v1/runs/${run.id}`);
    return c.json({ run: runJson(run) }, 202);
  });

  app.post("/:id/stop", requireAdmin, (c) => {
    return c.json({ run: runJson(registry.stopRun(c.req.param("id"))) }, 202);
  });

  app.post("/import", requireAdmin, async (c) => {
    const parsed = ImportRunSchema.safeParse(await jsonBody(c));
    if (!parsed.success) throw new ApiError("invalid_field", describeZodError(parsed.error), 400);
    const r = registry.importFolder(parsed.data.path);
    return c.json({
      run: runJson(r.run),
      accepted: r.accepted,
      added: r.added,
      rejected: r.rejected,
    });
  });

  app.get("/:id", (c) => {
    const run = found(c.req.param("id"));
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
        diffusionRuns: run.kind === "autoencoder" ? rows.diffusionRunsOf(run.id).map(runJson) : [],
      }),
    );
  });

  app.get("/:id/metrics", (c) => {
    const run = found(c.req.param("id"));
    const parsed = MetricsQuerySchema.safeParse(c.req.query());
    if (!parsed.success) throw new ApiError("invalid_field", describeZodError(parsed.error), 400);
    const { name } = parsed.data;
    const points = rows.metrics(run.id, name);
    if (points.length === 0) {
      throw new ApiError(
        "metric_not_found",
        `name: run ${run.id} has no metric ${JSON.stringify(name)} (it has: ${rows.metricNames(run.id).join(", ") || "none"})`,
        404,
      );
    }
    return c.json({ run: run.id, name, points });
  });

  return app;
}
