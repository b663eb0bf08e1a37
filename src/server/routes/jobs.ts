import { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import type { z } from "zod";
import type { ModelRuntime } from "../../pipeline/runtime.ts";
import { checkLatentsInput, checkVideoInput } from "../../pipeline/work/input-checks.ts";
import type { JobRunner } from "../../pipeline/work/job-runner.ts";
import { deleteFinishedJob } from "../../pipeline/work/retention.ts";
import { resolveModel } from "../../pipeline/work/submit-generation.ts";
import type { Db } from "../../store/db.ts";
import {
  countActiveJobs,
  getItem,
  getJob,
  insertJob,
  type JobWithItems,
  listJobs,
  newJobId,
} from "../../store/job-rows.ts";
import { type JobItemRow, type JobKind, TERMINAL_STATUSES } from "../../store/schema.ts";
import { ApiError } from "../api-error.ts";
import type { AppEnv } from "../auth.ts";
import type { Config } from "../config.ts";
import { hidePaths } from "../redact.ts";
import { describeZodError, LatentsQuerySchema, ListJobsQuerySchema } from "../schemas.ts";
import { sendFile } from "../send-file.ts";
import { receiveUploads } from "../uploads.ts";
import { checkWebhookUrl, registerWebhook } from "../webhooks.ts";
import { MAX_WAIT_S } from "./generations.ts";

export interface JobDeps {
  db: Db;
  runtime: ModelRuntime;
  runner: JobRunner;
  config: Config;
}

export interface JobResource<S extends z.ZodType> {
  kind: JobKind;
  /** URL segment: "encodings", "decodings", "reconstructions". */
  path: string;
  options: S;
  /** What each uploaded file must be. */
  input: "video" | "npy";
}

function iso(d: Date | null): string | null {
  return d ? d.toISOString() : null;
}

function itemUrls(base: string, kind: JobKind, item: JobItemRow): Record<string, string> {
  if (item.status !== "succeeded") return {};
  const prefix = `${base}/items/${item.index}`;
  return kind === "encode"
    ? { latents: `${prefix}/latents`, metadata: `${prefix}/metadata` }
    : { video: `${prefix}/video` };
}

export function jobJson(resourcePath: string, { job, items }: JobWithItems) {
  const base = `/v1/${resourcePath}/${job.id}`;
  return {
    id: job.id,
    kind: job.kind,
    status: job.status,
    model: job.model,
    options: job.options,
    progress: Math.round(job.progress * 1000) / 1000,
    attempts: job.attempts,
    error: job.errorCode
      ? { code: job.errorCode, message: hidePaths(job.errorMessage ?? "") }
      : null,
    createdAt: job.createdAt.toISOString(),
    startedAt: iso(job.startedAt),
    finishedAt: iso(job.finishedAt),
    items: items.map((item) => ({
      index: item.index,
      source: item.sourceName,
      status: item.status,
      error: item.errorCode
        ? { code: item.errorCode, message: hidePaths(item.errorMessage ?? "") }
        : null,
      sha256: item.outputSha256,
      metadata: item.metadata ?? null,
      urls: itemUrls(base, job.kind, item),
    })),
  };
}

const TERMINAL = new Set<string>(TERMINAL_STATUSES);
/** How often a waiting request (Prefer: wait, /events) looks at the job again. */
const POLL_MS = 100;

/** `Prefer: wait=N` in seconds, capped at MAX_WAIT_S (the generations' rule); 0 without it. */
function preferWait(c: {
  req: { header(name: string): string | undefined };
  header(name: string, value: string): void;
}): number {
  const prefer = /(?:^|[,;\s])wait=(\d+)/.exec(c.req.header("prefer") ?? "");
  if (!prefer) return 0;
  const waitS = Math.min(Number(prefer[1]), MAX_WAIT_S);
  c.header("Preference-Applied", `wait=${waitS}`);
  return waitS;
}

export function jobRoutes<S extends z.ZodType<{ model?: string | undefined }>>(
  deps: JobDeps,
  resource: JobResource<S>,
) {
  const { db, runtime, runner, config } = deps;
  const app = new Hono<AppEnv>();

  /** The job if this key may see it; 404 otherwise (others' jobs are not revealed). */
  const visibleJob = (id: string, key: AppEnv["Variables"]["apiKey"]): JobWithItems => {
    const found = getJob(db, id);
    if (
      !found ||
      found.job.kind !== resource.kind ||
      (found.job.keyId !== key.id && key.role !== "admin")
    ) {
      throw new ApiError("not_found", `There is no ${resource.path.slice(0, -1)} "${id}".`, 404);
    }
    return found;
  };

  /** The job once it has finished, or as it is after `ms` (or when the client has gone). */
  const waitForJob = async (id: string, ms: number, signal?: AbortSignal) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const now = getJob(db, id) as JobWithItems;
      if (TERMINAL.has(now.job.status) || Date.now() >= deadline || signal?.aborted) return now;
      await new Promise((r) => setTimeout(r, Math.min(POLL_MS, deadline - Date.now())));
    }
  };

  const succeededItem = (id: string, n: string, key: AppEnv["Variables"]["apiKey"]) => {
    visibleJob(id, key);
    const index = Number(n);
    const item = Number.isInteger(index) && index >= 0 ? getItem(db, id, index) : null;
    if (!item) throw new ApiError("not_found", `Job "${id}" has no item ${n}.`, 404);
    if (item.status !== "succeeded" || !item.outputs) {
      throw new ApiError(
        "item_not_ready",
        `item ${index} of job "${id}" is ${item.status}${item.errorMessage ? `: ${hidePaths(item.errorMessage)}` : ""}`,
        409,
      );
    }
    return item;
  };

  app.post("/", async (c) => {
    const key = c.var.apiKey;
    const active = countActiveJobs(db, key.id);
    if (active >= config.maxActiveJobsPerKey) {
      throw new ApiError(
        "too_many_jobs",
        `this key has ${active} queued or running jobs; the limit is ${config.maxActiveJobsPerKey}`,
        429,
        { headers: { "Retry-After": "10" } },
      );
    }
    const id = newJobId(resource.kind);
    const { options, uploads } = await receiveUploads(c, {
      dataDir: config.dataDir,
      jobId: id,
      maxFiles: config.maxFiles,
      maxBytes: config.maxUploadBytes,
      fields: (fields) => {
        const parsed = resource.options.safeParse(fields);
        if (!parsed.success) {
          throw new ApiError("invalid_field", describeZodError(parsed.error), 400);
        }
        // The same default-model rule as generations; unknown_model (404) lists the models.
        const bundle = resolveModel(runtime, parsed.data.model, config.defaultModel);
        const hook = (parsed.data as { webhook?: string }).webhook;
        if (hook !== undefined) checkWebhookUrl(hook, config.webhooks);
        return { ...parsed.data, model: bundle.name };
      },
      // Everything checkable before the 202: frames vs mode and bundle, duration, latents.
      check: async (path, _name, o) => {
        const opts = o as {
          model: string;
          mode?: "clip" | "whole";
          fps?: number;
          size?: "bundle" | "native";
        };
        const bundle = runtime.loaded(opts.model);
        if (resource.input === "npy") {
          await checkLatentsInput(bundle, path, { maxSeconds: config.maxSeconds });
        } else {
          await checkVideoInput(bundle, path, {
            mode: opts.mode ?? "clip",
            fps: opts.fps,
            maxSeconds: config.maxSeconds,
            size: opts.size,
            maxPixels: config.maxPixels,
          });
        }
      },
    });
    const { model, webhook, ...rest } = options as { model: string; webhook?: string } & Record<
      string,
      unknown
    >;
    const created = insertJob(db, {
      id,
      kind: resource.kind,
      keyId: key.id,
      model,
      options: rest,
      items: uploads.map((u) => ({
        sourceName: u.sourceName,
        inputPath: u.path,
        inputBytes: u.bytes,
      })),
    });
    if (webhook !== undefined) {
      registerWebhook(db, resource.path, id, checkWebhookUrl(webhook, config.webhooks));
    }
    runner.notify();
    c.header("Location", `/v1/${resource.path}/${id}`);
    const waitS = preferWait(c);
    const now = waitS > 0 ? await waitForJob(id, waitS * 1000, c.req.raw.signal) : null;
    const body = jobJson(resource.path, now ?? getJob(db, id) ?? created);
    return c.json(body, TERMINAL.has(body.status) ? 200 : 202);
  });

  app.get("/", (c) => {
    const parsed = ListJobsQuerySchema.safeParse(c.req.query());
    if (!parsed.success) throw new ApiError("invalid_field", describeZodError(parsed.error), 400);
    const { status, limit, before } = parsed.data;
    const key = c.var.apiKey;
    const beforeSeq = before ? visibleJob(before, key).job.seq : undefined;
    const found = listJobs(db, {
      kind: resource.kind,
      keyId: key.role === "admin" ? null : key.id,
      limit,
      ...(status ? { status } : {}),
      ...(beforeSeq !== undefined ? { beforeSeq } : {}),
    });
    const last = found.at(-1);
    return c.json({
      jobs: found.map((j) => jobJson(resource.path, j)),
      next:
        found.length === limit && last
          ? `/v1/${resource.path}?limit=${limit}${status ? `&status=${status}` : ""}&before=${last.job.id}`
          : null,
    });
  });

  app.get("/:id", async (c) => {
    const found = visibleJob(c.req.param("id"), c.var.apiKey);
    const waitS = preferWait(c);
    const now = waitS > 0 ? await waitForJob(found.job.id, waitS * 1000, c.req.raw.signal) : found;
    return c.json(jobJson(resource.path, now));
  });

  // Server-sent events: "progress" with the job JSON whenever it changes, "done" when it ends.
  app.get("/:id/events", (c) => {
    const first = visibleJob(c.req.param("id"), c.var.apiKey);
    return streamSSE(c, async (stream) => {
      let lastSent = "";
      let current: JobWithItems | null = first;
      while (!stream.aborted && current) {
        const json = jobJson(resource.path, current);
        const data = JSON.stringify(json);
        const final = TERMINAL.has(json.status);
        if (data !== lastSent) {
          lastSent = data;
          await stream.writeSSE({ event: final ? "done" : "progress", data });
        }
        if (final) break;
        await stream.sleep(POLL_MS);
        current = getJob(db, first.job.id);
      }
    });
  });

  app.post("/:id/cancel", (c) => {
    const id = c.req.param("id");
    visibleJob(id, c.var.apiKey);
    if (!runner.cancel(id)) {
      throw new ApiError("already_finished", `Job "${id}" has already finished.`, 409);
    }
    return c.json(jobJson(resource.path, visibleJob(id, c.var.apiKey)));
  });

  app.delete("/:id", async (c) => {
    const id = c.req.param("id");
    visibleJob(id, c.var.apiKey);
    if (!(await deleteFinishedJob(db, config.dataDir, id))) {
      throw new ApiError(
        "not_finished",
        `Job "${id}" is still queued or running; cancel it first (POST .../cancel).`,
        409,
      );
    }
    return c.json({ id, deleted: true });
  });

  if (resource.kind === "encode") {
    app.get("/:id/items/:n/latents", async (c) => {
      const item = succeededItem(c.req.param("id"), c.req.param("n"), c.var.apiKey);
      const query = LatentsQuerySchema.safeParse(c.req.query());
      if (!query.success) {
        throw new ApiError("invalid_field", describeZodError(query.error), 400);
      }
      if (query.data.format === "json") return c.json(item.metadata ?? {});
      const latents = item.outputs?.latents;
      if (!latents) throw new ApiError("internal", "the item has no latents output", 500);
      return sendFile(c, latents, {
        format: "npy",
        sha256: item.outputSha256,
        filename: `${item.jobId}-${item.index}.npy`,
        missing: "the output file of this item is gone from the data dir",
      });
    });
    app.get("/:id/items/:n/metadata", (c) => {
      const item = succeededItem(c.req.param("id"), c.req.param("n"), c.var.apiKey);
      return c.json(item.metadata ?? {});
    });
  } else {
    app.get("/:id/items/:n/video", async (c) => {
      const item = succeededItem(c.req.param("id"), c.req.param("n"), c.var.apiKey);
      const video = item.outputs?.video;
      if (!video) throw new ApiError("internal", "the item has no video output", 500);
      const ext = video.split(".").pop() ?? "mp4";
      return sendFile(c, video, {
        format: ext,
        sha256: item.outputSha256,
        filename: `${item.jobId}-${item.index}.${ext}`,
        missing: "the output file of this item is gone from the data dir",
      });
    });
  }
  return app;
}
