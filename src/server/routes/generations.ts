// Generations: POST a JSON request -> 202 with the job; GET /:id (status, step of steps, the seed
// used, timings); GET /:id/content?index=i; POST /:id/cancel. Visible to the key that made them
// and to admin keys. Request errors are 400 "invalid_field" naming the field.

import { randomInt } from "node:crypto";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { Readable } from "node:stream";
import { Hono } from "hono";
import { isPipelineError } from "../../pipeline/errors.ts";
import { resolveSettings } from "../../pipeline/generate.ts";
import type { GenerationOptions, GenerationRunner } from "../../pipeline/generations.ts";
import type { ModelRuntime } from "../../pipeline/runtime.ts";
import type { Db } from "../../pipeline/store/db.ts";
import {
  getGeneration,
  insertGeneration,
  newGenerationId,
} from "../../pipeline/store/generations.ts";
import type { GenerationRow } from "../../pipeline/store/schema.ts";
import type { AppEnv } from "../auth.ts";
import { ApiError } from "../errors.ts";
import { describeZodError, GenerationRequestSchema } from "../schemas.ts";

const TYPES: Record<string, string> = {
  mp4: "video/mp4",
  webm: "video/webm",
  gif: "image/gif",
  npy: "application/octet-stream",
};

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
}) {
  const { db, runtime, generations } = deps;
  const app = new Hono<AppEnv>();

  const visible = (id: string, key: AppEnv["Variables"]["apiKey"]): GenerationRow => {
    const g = getGeneration(db, id);
    if (!g || (g.keyId !== key.id && key.role !== "admin")) {
      throw new ApiError(404, "generation_not_found", `no generation "${id}"`);
    }
    return g;
  };

  app.post("/", async (c) => {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch (err) {
      throw new ApiError(400, "invalid_json", `the body is not JSON: ${(err as Error).message}`);
    }
    const parsed = GenerationRequestSchema.safeParse(body);
    if (!parsed.success) throw new ApiError(400, "invalid_field", describeZodError(parsed.error));
    const req = parsed.data;
    let bundle: ReturnType<ModelRuntime["loaded"]>;
    try {
      bundle = runtime.loaded(req.model);
    } catch (err) {
      if (isPipelineError(err, "unknown_model")) {
        throw new ApiError(400, "invalid_field", `model: ${err.message}`);
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
        throw new ApiError(400, "invalid_field", err.message);
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
    const id = newGenerationId();
    insertGeneration(db, {
      id,
      keyId: c.var.apiKey.id,
      model: bundle.name,
      options: options as unknown as Record<string, unknown>,
      steps: settings.steps,
    });
    generations.notify();
    c.header("Location", `/v1/generations/${id}`);
    return c.json(generationJson(getGeneration(db, id) as GenerationRow), 202);
  });

  app.get("/:id", (c) => c.json(generationJson(visible(c.req.param("id"), c.var.apiKey))));

  app.get("/:id/content", async (c) => {
    const g = visible(c.req.param("id"), c.var.apiKey);
    const raw = c.req.query("index") ?? "0";
    const index = Number(raw);
    const o = g.options as unknown as GenerationOptions;
    if (!/^\d+$/.test(raw) || index >= o.n) {
      throw new ApiError(400, "invalid_field", `index: ${raw} is not in 0..${o.n - 1}`);
    }
    if (g.status !== "succeeded" || !g.outputs) {
      throw new ApiError(409, "not_ready", `generation "${g.id}" is ${g.status}`);
    }
    const path = g.outputs[index] as string;
    const size = await stat(path).then(
      (s) => s.size,
      () => {
        throw new ApiError(500, "output_missing", "the output file is gone from the data dir");
      },
    );
    return new Response(Readable.toWeb(createReadStream(path)) as ReadableStream, {
      headers: {
        "content-type": TYPES[o.format] ?? "application/octet-stream",
        "content-length": String(size),
        "content-disposition": `attachment; filename="${g.id}-${index}.${o.format}"`,
        etag: `"${g.outputSha256?.[index] ?? ""}"`,
      },
    });
  });

  app.post("/:id/cancel", (c) => {
    const id = c.req.param("id");
    visible(id, c.var.apiKey);
    if (!generations.cancel(id)) {
      throw new ApiError(409, "generation_finished", `generation "${id}" has already finished`);
    }
    return c.json(generationJson(visible(id, c.var.apiKey)));
  });

  return app;
}
