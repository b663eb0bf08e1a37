// Generations: POST a JSON request -> 202 with the job; GET /:id (status, step of steps, the seed
// used, timings); GET /:id/content?index=i; POST /:id/cancel. Without "model" the request uses the
// default bundle (work/submit-generation.ts, the use case this route and the admin page share).
// Visible to the key that made them and to admin keys. Request errors are 400 "invalid_field"
// naming the field. A generation may start from an image (image-to-video) or continue a clip or
// an encoding's latents (extension): multipart with an `image` or `video` file, or `encoding`
// (JSON or multipart); the input is checked before the 202 and stored with the generation
// (work/generation-input.ts).

import { rm } from "node:fs/promises";
import { type Context, Hono } from "hono";
import { streamSSE } from "hono/streaming";
import type { ModelRuntime } from "../../pipeline/runtime.ts";
import { generationsDir, uploadsDir } from "../../pipeline/work/datadir.ts";
import {
  checkClipInput,
  checkImageInput,
  storeEncodingLatents,
  storeUpload,
} from "../../pipeline/work/generation-input.ts";
import type { GenerationOptions, GenerationRunner } from "../../pipeline/work/generation-runner.ts";
import { deleteFinishedGeneration } from "../../pipeline/work/retention.ts";
import {
  type GenerationRequest,
  resolveModel,
  submitGeneration,
} from "../../pipeline/work/submit-generation.ts";
import type { Db } from "../../store/db.ts";
import {
  countGenerations,
  getGeneration,
  listGenerations,
  newGenerationId,
} from "../../store/generation-rows.ts";
import { ACTIVE_STATUSES, type GenerationRow, TERMINAL_STATUSES } from "../../store/schema.ts";
import { ApiError } from "../api-error.ts";
import type { AppEnv } from "../auth.ts";
import { type Config, submitDepsOf } from "../config.ts";
import { hidePaths } from "../redact.ts";
import {
  describeZodError,
  type GenerationForm,
  GenerationFormSchema,
  GenerationRequestSchema,
  ListJobsQuerySchema,
} from "../schemas.ts";
import { sendFile } from "../send-file.ts";
import { receiveUploads, type SavedUpload } from "../uploads.ts";
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

type ParsedJson = ReturnType<typeof GenerationRequestSchema.parse>;

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
    // JSON, or multipart with an image or video; anything else (a urlencoded form) is a 415.
    const type = c.req.header("content-type");
    const form = type !== undefined && /^multipart\/form-data\s*(;|$)/i.test(type);
    if (type !== undefined && !form && !/^application\/([\w.-]+\+)?json\s*(;|$)/i.test(type)) {
      throw new ApiError(
        "unsupported_media_type",
        `a generation is a JSON body (content-type: application/json), or multipart/form-data with an image or video, got "${type.split(";")[0]}"`,
        415,
      );
    }
    const id = newGenerationId();
    if (form) {
      // Before the upload is read, as every upload's 429 is (the quota is checked again on queueing).
      const active = countGenerations(db, ACTIVE_STATUSES, c.var.apiKey.id);
      if (active >= config.maxActiveJobsPerKey) {
        throw new ApiError(
          "too_many_generations",
          `this key has ${active} queued or running generations; the limit is ${config.maxActiveJobsPerKey}`,
          429,
          { headers: { "Retry-After": "10" } },
        );
      }
    }
    const { data, upload } = form
      ? await receiveForm(c, id)
      : { ...(await readJson(c)), upload: null };
    const { webhook, encoding, item, output, ...rest } = data;
    let request: GenerationRequest;
    let hook: string | undefined;
    try {
      hook = webhook !== undefined ? checkWebhookUrl(webhook, config.webhooks) : undefined;
      // A form's label of digits is a class id, as a JSON number is.
      const label = rest.label;
      request = {
        ...rest,
        label: form && typeof label === "string" && /^\d+$/.test(label) ? Number(label) : label,
      };
      const input = await storeInput(c, id, { upload, encoding, item, output, model: rest.model });
      if (input) request.input = input;
    } catch (err) {
      await removeInput(id);
      throw err;
    }
    let submitted: ReturnType<typeof submitGeneration>;
    try {
      submitted = submitGeneration(submitDeps, c.var.apiKey.id, request, idempotencyKey, id);
    } catch (err) {
      await removeInput(id);
      throw err;
    }
    if (submitted.replayed) await removeInput(id);
    if (submitted.replayed) {
      const { row, status, headers } = await answer(c, submitted.row.id);
      return c.json(generationJson(row), status, { ...headers, "Idempotent-Replayed": "true" });
    }
    if (hook !== undefined) registerWebhook(db, "generations", id, hook);
    generations.notify();
    const { row, status, headers } = await answer(c, id);
    return c.json(generationJson(row), status === 200 ? 200 : 202, headers);
  });

  /** The JSON body, checked. */
  async function readJson(c: Context<AppEnv>): Promise<{ data: GenerationForm | ParsedJson }> {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch (err) {
      throw new ApiError("invalid_json", `the body is not JSON: ${(err as Error).message}`, 400);
    }
    const parsed = GenerationRequestSchema.safeParse(body);
    if (!parsed.success) throw new ApiError("invalid_field", describeZodError(parsed.error), 400);
    return { data: parsed.data };
  }

  /** The multipart form: its fields checked, its one file (image or video) checked and kept in
   * uploads/<id>/ until storeInput moves it. */
  async function receiveForm(
    c: Context<AppEnv>,
    id: string,
  ): Promise<{ data: GenerationForm; upload: SavedUpload | null }> {
    const { options, uploads } = await receiveUploads(c, {
      dataDir: config.dataDir,
      jobId: id,
      maxFiles: 2,
      maxBytes: config.maxUploadBytes,
      fileFields: ["image", "video"],
      filesOptional: true,
      fields: (fields) => {
        const parsed = GenerationFormSchema.safeParse(fields);
        if (!parsed.success)
          throw new ApiError("invalid_field", describeZodError(parsed.error), 400);
        resolveModel(runtime, parsed.data.model, config.defaultModel); // 404 before the files
        return parsed.data;
      },
      check: async (path, _name, o, field) => {
        if (field === "image") return checkImageInput(path);
        const bundle = resolveModel(runtime, o.model, config.defaultModel);
        return checkClipInput(bundle, path, config.maxSeconds);
      },
    });
    if (uploads.length > 1) {
      await rm(uploadsDir(config.dataDir, id), { recursive: true, force: true });
      throw new ApiError(
        "invalid_field",
        `${uploads.map((u) => u.field).join(" and ")}: give one file, an image or a video`,
        400,
      );
    }
    return { data: options, upload: uploads[0] ?? null };
  }

  /** Stores what the generation starts from (an upload or an encoding's latents) in its folder. */
  async function storeInput(
    c: Context<AppEnv>,
    id: string,
    o: {
      upload: SavedUpload | null;
      encoding: string | undefined;
      item: number | undefined;
      output: "continuation" | "whole" | undefined;
      model: string | undefined;
    },
  ): Promise<GenerationRequest["input"]> {
    const { upload, encoding } = o;
    if (upload && encoding !== undefined) {
      throw new ApiError(
        "invalid_field",
        `encoding: give either an encoding or an uploaded ${upload.field}, not both`,
        400,
      );
    }
    if (o.item !== undefined && encoding === undefined) {
      throw new ApiError("invalid_field", "item: only with encoding", 400);
    }
    const extension = encoding !== undefined || upload?.field === "video";
    if (o.output !== undefined && !extension) {
      throw new ApiError(
        "invalid_field",
        "output: only an extension (a video or an encoding) has an output mode",
        400,
      );
    }
    const output = o.output ?? (extension ? "continuation" : "whole");
    if (upload) {
      const stored = await storeUpload(config.dataDir, id, upload.path);
      await rm(uploadsDir(config.dataDir, id), { recursive: true, force: true });
      const kind = upload.field === "image" ? "image" : "video";
      return { kind, source: upload.sourceName, output, ...stored };
    }
    if (encoding === undefined) return undefined;
    const bundle = resolveModel(runtime, o.model, config.defaultModel);
    const stored = await storeEncodingLatents(
      db,
      config.dataDir,
      id,
      bundle,
      c.var.apiKey,
      encoding,
      o.item ?? 0,
    );
    return { kind: "latents", output, ...stored };
  }

  /** Removes what a refused or replayed request stored. */
  async function removeInput(id: string): Promise<void> {
    await rm(uploadsDir(config.dataDir, id), { recursive: true, force: true });
    await rm(generationsDir(config.dataDir, id), { recursive: true, force: true });
  }

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
