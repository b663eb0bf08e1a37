// Generations: POST a JSON request -> 202 with the job; GET /:id (status, step of steps, the seed
// used, timings); GET /:id/content?index=i; POST /:id/cancel. Without "model" the request uses the
// default bundle (work/submit-generation.ts, the use case this route and the admin page share).
// Visible to the key that made them and to admin keys. Request errors are 400 "invalid_field"
// naming the field.

import { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import type { ModelRuntime } from "../../pipeline/runtime.ts";
import type { GenerationOptions, GenerationRunner } from "../../pipeline/work/generation-runner.ts";
import { deleteFinishedGeneration } from "../../pipeline/work/retention.ts";
import { submitGeneration } from "../../pipeline/work/submit-generation.ts";
import type { Db } from "../../store/db.ts";
import { getGeneration, listGenerations } from "../../store/generation-rows.ts";
import { type GenerationRow, TERMINAL_STATUSES } from "../../store/schema.ts";
import { ApiError } from "../api-error.ts";
import type { AppEnv } from "../auth.ts";
import { type Config, submitDepsOf } from "../config.ts";
import { hidePaths } from "../redact.ts";
import { describeZodError, GenerationRequestSchema, ListJobsQuerySchema } from "../schemas.ts";
import { sendFile } from "../send-file.ts";
import { checkWebhookUrl, registerWebhook } from "../webhooks.ts";

/** The longest `Prefer: wait=N` honoured, in seconds. */
export const MAX_WAIT_S = 60;

const TERMINAL = new Set<string>(TERMINAL_STATUSES);

export function generationJson(g: GenerationRow) {
  const o = g.options as unknown as GenerationOptions;
  const base = `/v1/generations/${g.id}`;
  const ms = (a: Date | null, b: Date | null) => (a && b ? b.getTime() - a.getTime() : null);
  return {
    id: g.id,
    status: g.status,
    model: g.model,
    options: o,
    seed: o.seed,
    step: g.step,
    steps: g.steps,
    attempts: g.attempts,
    error: g.errorCode ? { code: g.errorCode, message: hidePaths(g.errorMessage ?? "") } : null,
    createdAt: g.createdAt.toISOString(),
    startedAt: g.startedAt?.toISOString() ?? null,
    finishedAt: g.finishedAt?.toISOString() ?? null,
    timings: { queuedMs: ms(g.createdAt, g.startedAt), runMs: ms(g.startedAt, g.finishedAt) },
    outputs:
      g.status === "succeeded"
        ? (g.outputSha256 ?? []).map((sha256, index) => ({
            index,
            sha256,
            url: `${base}/content?index=${index}`,
          }))
        : [],
  };
}

export function generationRoutes(deps: {
  db: Db;
  runtime: ModelRuntime;
  generations: GenerationRunner;
  config: Config;
}) {
  const { db, runtime, generations, config } = deps;
  const app = new Hono<AppEnv>();
  const submitDeps = submitDepsOf(db, runtime, config);

  const visible = (id: string, key: AppEnv["Variables"]["apiKey"]): GenerationRow => {
    const g = getGeneration(db, id);
    if (!g || (g.keyId !== key.id && key.role !== "admin")) {
      throw new ApiError("not_found", `There is no generation "${id}".`, 404);
    }
    return g;
  };

  /** Resolves with the row once it is final, or with its latest state after `ms`. */
  const waitFor = (id: string, ms: number, signal?: AbortSignal): Promise<GenerationRow> =>
    new Promise((resolve) => {
      const current = getGeneration(db, id) as GenerationRow;
      if (TERMINAL.has(current.status) || ms <= 0) return resolve(current);
      const done = () => {
        clearTimeout(timer);
        unsubscribe();
        signal?.removeEventListener("abort", done);
        resolve(getGeneration(db, id) as GenerationRow);
      };
      const timer = setTimeout(done, ms);
      const unsubscribe = generations.subscribe((row) => {
        if (row.id === id && TERMINAL.has(row.status)) done();
      });
      signal?.addEventListener("abort", done);
    });

  /** `Prefer: wait=N` (seconds, capped at MAX_WAIT_S): 200 with the final job, else 202. */
  const answer = async (
    c: { req: { header(name: string): string | undefined; raw: Request } },
    id: string,
  ) => {
    const prefer = /(?:^|[,;\s])wait=(\d+)/.exec(c.req.header("prefer") ?? "");
    const waitS = prefer ? Math.min(Number(prefer[1]), MAX_WAIT_S) : 0;
    const row = await waitFor(id, waitS * 1000, c.req.raw.signal);
    const headers: Record<string, string> = { Location: `/v1/generations/${id}` };
    if (prefer) headers["Preference-Applied"] = `wait=${waitS}`;
    return { row, status: TERMINAL.has(row.status) ? 200 : 202, headers } as const;
  };

  app.get("/", (c) => {
    const parsed = ListJobsQuerySchema.safeParse(c.req.query());
    if (!parsed.success) throw new ApiError("invalid_field", describeZodError(parsed.error), 400);
    const { status, limit, before } = parsed.data;
    const key = c.var.apiKey;
    const beforeSeq = before ? visible(before, key).seq : undefined;
    const rows = listGenerations(db, {
      keyId: key.role === "admin" ? null : key.id,
      limit,
      ...(status ? { status } : {}),
      ...(beforeSeq !== undefined ? { beforeSeq } : {}),
    });
    const last = rows.at(-1);
    return c.json({
      generations: rows.map(generationJson),
      next:
        rows.length === limit && last
          ? `/v1/generations?limit=${limit}${status ? `&status=${status}` : ""}&before=${last.id}`
          : null,
    });
  });

  app.post("/", async (c) => {
    const idempotencyKey = c.req.header("idempotency-key");
    if (idempotencyKey !== undefined && !/^[\x21-\x7e]{1,200}$/.test(idempotencyKey)) {
      throw new ApiError(
        "invalid_field",
        "Idempotency-Key: 1..200 printable ASCII characters without spaces",
        400,
      );
    }
    // JSON only: a form (multipart or urlencoded) is a 415 naming what was sent.
    const type = c.req.header("content-type");
    if (type !== undefined && !/^application\/([\w.-]+\+)?json\s*(;|$)/i.test(type)) {
      throw new ApiError(
        "unsupported_media_type",
        `a generation is a JSON body (content-type: application/json), got "${type.split(";")[0]}"`,
        415,
      );
    }
    let body: unknown;
    try {
      body = await c.req.json();
    } catch (err) {
      throw new ApiError("invalid_json", `the body is not JSON: ${(err as Error).message}`, 400);
    }
    const parsed = GenerationRequestSchema.safeParse(body);
    if (!parsed.success) throw new ApiError("invalid_field", describeZodError(parsed.error), 400);
    const { webhook, ...request } = parsed.data;
    const hook = webhook !== undefined ? checkWebhookUrl(webhook, config.webhooks) : undefined;
    const submitted = submitGeneration(submitDeps, c.var.apiKey.id, request, idempotencyKey);
    if (submitted.replayed) {
      const { row, status, headers } = await answer(c, submitted.row.id);
      return c.json(generationJson(row), status, { ...headers, "Idempotent-Replayed": "true" });
    }
    const id = submitted.row.id;
    if (hook !== undefined) registerWebhook(db, "generations", id, hook);
    generations.notify();
    const { row, status, headers } = await answer(c, id);
    return c.json(generationJson(row), status === 200 ? 200 : 202, headers);
  });

  app.get("/:id/events", (c) => {
    const first = visible(c.req.param("id"), c.var.apiKey);
    return streamSSE(c, async (stream) => {
      const queue: GenerationRow[] = [first];
      let wake: (() => void) | null = null;
      const unsubscribe = generations.subscribe((row) => {
        if (row.id !== first.id) return;
        queue.push(row);
        wake?.();
      });
      stream.onAbort(() => wake?.());
      try {
        // Changes between the read above and subscribing are caught by re-reading once.
        queue.push(getGeneration(db, first.id) as GenerationRow);
        let lastSent = "";
        while (!stream.aborted) {
          const row = queue.shift();
          if (!row) {
            await new Promise<void>((resolve) => {
              wake = resolve;
            });
            wake = null;
            continue;
          }
          const json = generationJson(row);
          const data = JSON.stringify(json);
          if (data === lastSent) continue;
          lastSent = data;
          const final = TERMINAL.has(row.status);
          await stream.writeSSE({ event: final ? "done" : "progress", data });
          if (final) break;
        }
      } finally {
        unsubscribe();
      }
    });
  });

  // `Prefer: wait=N` waits for the end (at most N s), as on every resource.
  app.get("/:id", async (c) => {
    const g = visible(c.req.param("id"), c.var.apiKey);
    const prefer = /(?:^|[,;\s])wait=(\d+)/.exec(c.req.header("prefer") ?? "");
    if (!prefer) return c.json(generationJson(g));
    const waitS = Math.min(Number(prefer[1]), MAX_WAIT_S);
    c.header("Preference-Applied", `wait=${waitS}`);
    return c.json(generationJson(await waitFor(g.id, waitS * 1000, c.req.raw.signal)));
  });

  app.get("/:id/content", async (c) => {
    const g = visible(c.req.param("id"), c.var.apiKey);
    const raw = c.req.query("index") ?? "0";
    const index = Number(raw);
    const o = g.options as unknown as GenerationOptions;
    if (!/^\d+$/.test(raw) || index >= o.n) {
      throw new ApiError("invalid_field", `index: ${raw} is not in 0..${o.n - 1}`, 400);
    }
    if (g.status !== "succeeded" || !g.outputs) {
      throw new ApiError("not_ready", `generation "${g.id}" is ${g.status}`, 409);
    }
    return sendFile(c, g.outputs[index] as string, {
      format: o.format,
      sha256: g.outputSha256?.[index] ?? "",
      filename: `${g.id}-${index}.${o.format}`,
    });
  });

  app.post("/:id/cancel", (c) => {
    const id = c.req.param("id");
    visible(id, c.var.apiKey);
    if (!generations.cancel(id)) {
      throw new ApiError("already_finished", `Generation "${id}" has already finished.`, 409);
    }
    return c.json(generationJson(visible(id, c.var.apiKey)));
  });

  app.delete("/:id", async (c) => {
    const id = c.req.param("id");
    visible(id, c.var.apiKey);
    if (!(await deleteFinishedGeneration(db, config.dataDir, id))) {
      throw new ApiError(
        "not_finished",
        `Generation "${id}" is still queued or running; cancel it first (POST .../cancel).`,
        409,
      );
    }
    return c.json({ id, deleted: true });
  });

  return app;
}
