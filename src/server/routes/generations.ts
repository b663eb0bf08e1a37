// Generations: POST a JSON request -> 202 with the job; GET /:id (status, step of steps, the seed
// used, timings); GET /:id/content?index=i; POST /:id/cancel. Without "model" the request uses the
// default bundle (generations.ts defaultGenerationModel). Visible to the key that made them
// and to admin keys. Request errors are 400 "invalid_field" naming the field.

import { createHash, randomInt } from "node:crypto";
import { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import { resolveSettings } from "../../pipeline/generate/generate.ts";
import { isPipelineError } from "../../pipeline/pipeline-error.ts";
import type { ModelRuntime } from "../../pipeline/runtime.ts";
import {
  defaultGenerationModel,
  type GenerationOptions,
  type GenerationRunner,
} from "../../pipeline/work/generation-runner.ts";
import type { Db } from "../../store/db.ts";
import {
  countGenerations,
  generationByIdempotencyKey,
  getGeneration,
  insertGeneration,
  listGenerations,
  newGenerationId,
} from "../../store/generation-rows.ts";
import { ACTIVE_STATUSES, type GenerationRow, TERMINAL_STATUSES } from "../../store/schema.ts";
import { ApiError } from "../api-error.ts";
import type { AppEnv } from "../auth.ts";
import type { Config } from "../config.ts";
import { describeZodError, GenerationRequestSchema, ListJobsQuerySchema } from "../schemas.ts";
import { sendFile } from "../send-file.ts";

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
    error: g.errorCode ? { code: g.errorCode, message: g.errorMessage ?? "" } : null,
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

  const visible = (id: string, key: AppEnv["Variables"]["apiKey"]): GenerationRow => {
    const g = getGeneration(db, id);
    if (!g || (g.keyId !== key.id && key.role !== "admin")) {
      throw new ApiError("generation_not_found", `no generation "${id}"`, 404);
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
    let body: unknown;
    try {
      body = await c.req.json();
    } catch (err) {
      throw new ApiError("invalid_json", `the body is not JSON: ${(err as Error).message}`, 400);
    }
    const parsed = GenerationRequestSchema.safeParse(body);
    if (!parsed.success) throw new ApiError("invalid_field", describeZodError(parsed.error), 400);
    const req = parsed.data;
    const requestSha256 = createHash("sha256").update(JSON.stringify(req)).digest("hex");
    const replay = () => {
      if (idempotencyKey === undefined) return null;
      const found = generationByIdempotencyKey(db, c.var.apiKey.id, idempotencyKey);
      if (found && found.requestSha256 !== requestSha256) {
        throw new ApiError(
          "idempotency_key_reused",
          `Idempotency-Key "${idempotencyKey}" was used for a different request (${found.id})`,
          422,
        );
      }
      return found;
    };
    const earlier = replay();
    if (earlier) {
      const { row, status, headers } = await answer(c, earlier.id);
      return c.json(generationJson(row), status, { ...headers, "Idempotent-Replayed": "true" });
    }
    // No "model": the configured default (DIFFUSABLE_DEFAULT_MODEL), else the loaded se bundle.
    const modelName = req.model ?? defaultGenerationModel(runtime, config.defaultModel);
    if (modelName === null) {
      const known = runtime.bundles().map((m) => m.name);
      throw new ApiError(
        "invalid_field",
        `model: required: no default model (DIFFUSABLE_DEFAULT_MODEL is unset and no loaded bundle has variant "se"); known models: ${known.length ? known.join(", ") : "(none)"}`,
        400,
      );
    }
    let bundle: ReturnType<ModelRuntime["loaded"]>;
    try {
      bundle = runtime.loaded(modelName);
    } catch (err) {
      if (isPipelineError(err, "unknown_model")) {
        const from = req.model === undefined ? " (the default, DIFFUSABLE_DEFAULT_MODEL)" : "";
        throw new ApiError("invalid_field", `model: ${err.message}${from}`, 400);
      }
      throw err;
    }
    const seed = req.seed ?? randomInt(0, 2 ** 47);
    let settings: ReturnType<typeof resolveSettings>;
    try {
      settings = resolveSettings(bundle, {
        label: req.label,
        seed,
        ...(req.steps !== undefined ? { steps: req.steps } : {}),
        ...(req.guidance !== undefined ? { guidance: req.guidance } : {}),
        ...(req.method !== undefined ? { method: req.method } : {}),
        ...(req.frames !== undefined ? { frames: req.frames } : {}),
        n: req.n,
      });
    } catch (err) {
      if (isPipelineError(err, "bad_request")) {
        throw new ApiError("invalid_field", err.message, 400);
      }
      throw err; // cannot_generate (422)
    }
    const options: GenerationOptions = {
      label: settings.label,
      labelName: settings.labelName,
      seed: settings.seed,
      steps: settings.steps,
      guidance: settings.guidance,
      method: settings.method,
      frames: settings.frames,
      n: settings.n,
      format: req.format,
    };
    // The bounds: per key (queued + running), then the whole queue.
    const active = countGenerations(db, ACTIVE_STATUSES, c.var.apiKey.id);
    if (active >= config.maxActiveJobsPerKey) {
      throw new ApiError(
        "too_many_generations",
        `this key has ${active} queued or running generations; the limit is ${config.maxActiveJobsPerKey}`,
        429,
        { headers: { "Retry-After": "10" } },
      );
    }
    const queued = countGenerations(db, ["queued"]);
    if (queued >= config.maxQueuedGenerations) {
      throw new ApiError(
        "queue_full",
        `${queued} generations are queued; the limit is ${config.maxQueuedGenerations}`,
        429,
        { headers: { "Retry-After": "10" } },
      );
    }
    const id = newGenerationId();
    try {
      insertGeneration(db, {
        id,
        keyId: c.var.apiKey.id,
        model: bundle.name,
        options: options as unknown as Record<string, unknown>,
        steps: settings.steps,
        idempotencyKey: idempotencyKey ?? null,
        requestSha256,
      });
    } catch (err) {
      // A concurrent retry with the same Idempotency-Key inserted first: answer with its job.
      const raced = replay();
      if (!raced) throw err;
      const { row, status, headers } = await answer(c, raced.id);
      return c.json(generationJson(row), status, { ...headers, "Idempotent-Replayed": "true" });
    }
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

  app.get("/:id", (c) => c.json(generationJson(visible(c.req.param("id"), c.var.apiKey))));

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
      throw new ApiError("generation_finished", `generation "${id}" has already finished`, 409);
    }
    return c.json(generationJson(visible(id, c.var.apiKey)));
  });

  return app;
}
