// The one route factory of the job resources: one call per kind of the registry
// (pipeline/work/job-kinds.ts) gives /v1/<resource> every verb of the README's "Resources and
// verbs" table, with the same list envelope, the same error codes, Idempotency-Key on POST and
// Prefer: wait on POST and GET. HTTP only: the body is read here (multipart streamed to disk by
// uploads.ts, or JSON), the work is the submit use case's (pipeline/work/submit-job.ts), the
// waiting job-watch.ts's, the JSON job-view.ts's.

import { rm } from "node:fs/promises";
import { type Context, Hono } from "hono";
import { streamSSE } from "hono/streaming";
import type { ModelRuntime } from "../../pipeline/runtime.ts";
import { uploadsDir } from "../../pipeline/work/datadir.ts";
import { resolveModel } from "../../pipeline/work/default-model.ts";
import type { JobRunner } from "../../pipeline/work/job-runner.ts";
import { isOver, waitForJob, watchJob } from "../../pipeline/work/job-watch.ts";
import type { CommonFields, JobKind, Upload } from "../../pipeline/work/kind-contract.ts";
import { deleteFinishedJob } from "../../pipeline/work/retention.ts";
import { checkQuota, submitJob } from "../../pipeline/work/submit-job.ts";
import { newJobId } from "../../store/job-rows.ts";
import type { JobItemRow, JobWithItems, Store } from "../../store/store.ts";
import { ApiError } from "../api-error.ts";
import type { AppEnv } from "../auth.ts";
import { type Config, submitDepsOf } from "../config.ts";
import { jobJson, jobPath } from "../job-view.ts";
import { hidePaths } from "../redact.ts";
import { describeZodError, LatentsQuerySchema, ListJobsQuerySchema } from "../schemas.ts";
import { sendFile } from "../send-file.ts";
import { receiveUploads } from "../uploads.ts";
import { checkWebhookUrl, registerWebhook } from "../webhooks.ts";

/** The longest `Prefer: wait=N` honoured, in seconds. */
export const MAX_WAIT_S = 60;

export interface JobResourceDeps {
  /** The store of jobs (SQLite or PostgreSQL). */
  db: Store;
  runtime: ModelRuntime;
  runner: JobRunner;
  config: Config;
}

type Key = AppEnv["Variables"]["apiKey"];

/** `Prefer: wait=N` in seconds, capped at MAX_WAIT_S, with its Preference-Applied; 0 without. */
function preferWait(c: Context): number {
  const prefer = /(?:^|[,;\s])wait=(\d+)/.exec(c.req.header("prefer") ?? "");
  if (!prefer) return 0;
  const waitS = Math.min(Number(prefer[1]), MAX_WAIT_S);
  c.header("Preference-Applied", `wait=${waitS}`);
  return waitS;
}

const JSON_TYPE = /^application\/([\w.-]+\+)?json\s*(;|$)/i;
const MULTIPART = /^multipart\/form-data\s*(;|$)/i;

export function jobResourceRoutes(deps: JobResourceDeps, kind: JobKind) {
  const { db, runtime, runner, config } = deps;
  const submitDeps = submitDepsOf(db, runtime, config);
  const app = new Hono<AppEnv>();

  /** The job if this key may see it; 404 otherwise (others' jobs are not revealed). */
  const visible = async (id: string, key: Key): Promise<JobWithItems> => {
    const found = await db.getJob(id);
    if (
      !found ||
      found.job.kind !== kind.name ||
      (found.job.keyId !== key.id && key.role !== "admin")
    ) {
      throw new ApiError("not_found", `There is no ${kind.singular} "${id}".`, 404);
    }
    return found;
  };

  /** The job after Prefer: wait (as it is without one). */
  const waited = async (c: Context, job: JobWithItems): Promise<JobWithItems> => {
    const waitS = preferWait(c);
    if (waitS === 0) return job;
    return (await waitForJob(runner, db, job.job.id, waitS * 1000, c.req.raw.signal)) ?? job;
  };

  /** The text fields, checked (400 naming the field), the model known (404 before any file is
   * checked), the webhook allowed (400). */
  const checkFields = (schema: JobKind["request"]["form"], raw: unknown): CommonFields => {
    const parsed = schema.safeParse(raw);
    if (!parsed.success) throw new ApiError("invalid_field", describeZodError(parsed.error), 400);
    resolveModel(runtime, parsed.data.model, config.defaultModel);
    if (parsed.data.webhook !== undefined) checkWebhookUrl(parsed.data.webhook, config.webhooks);
    return parsed.data;
  };

  /** The request's fields and files: multipart (streamed to uploads/<id>/, each file checked),
   * or JSON for a kind that takes it. */
  const readRequest = async (
    c: Context<AppEnv>,
    id: string,
  ): Promise<{ fields: CommonFields; uploads: Upload[]; fromForm: boolean }> => {
    const type = c.req.header("content-type");
    const json = kind.request.json;
    if (json && !(type !== undefined && MULTIPART.test(type))) {
      if (type !== undefined && !JSON_TYPE.test(type)) {
        const files = kind.request.fileFields.join(" or ");
        throw new ApiError(
          "unsupported_media_type",
          `a ${kind.singular} is a JSON body (content-type: application/json), or multipart/form-data with ${/^[aeiou]/.test(files) ? "an" : "a"} ${files}, got "${type.split(";")[0]}"`,
          415,
        );
      }
      let body: unknown;
      try {
        body = await c.req.json();
      } catch (err) {
        throw new ApiError("invalid_json", `the body is not JSON: ${(err as Error).message}`, 400);
      }
      return { fields: checkFields(json, body), uploads: [], fromForm: false };
    }
    const { options, uploads } = await receiveUploads(c, {
      dataDir: config.dataDir,
      jobId: id,
      maxFiles: kind.request.maxFiles ?? config.maxFiles,
      maxBytes: config.maxUploadBytes,
      fileFields: kind.request.fileFields,
      filesOptional: !kind.request.filesRequired,
      fields: (fields) => checkFields(kind.request.form, fields),
      // Everything checkable before the 202: frames vs mode and bundle, duration, latents, images.
      check: (path, _name, fields, field) => kind.checkFile(runtime, config, path, field, fields),
    });
    return { fields: options, uploads, fromForm: true };
  };

  app.post("/", async (c) => {
    const key = c.var.apiKey;
    const idempotencyKey = c.req.header("idempotency-key");
    if (idempotencyKey !== undefined && !/^[\x21-\x7e]{1,200}$/.test(idempotencyKey)) {
      throw new ApiError(
        "invalid_field",
        "Idempotency-Key: 1..200 printable ASCII characters without spaces",
        400,
      );
    }
    // Before the body is read, as every 429 is (checked again when the job is queued); a retry
    // of a request already queued is answered with its job whatever the quota.
    if (
      idempotencyKey === undefined ||
      !(await db.jobByIdempotencyKey(key.id, kind.name, idempotencyKey))
    ) {
      await checkQuota(submitDeps, kind, key.id);
    }
    const id = newJobId(kind.idPrefix);
    let submitted: Awaited<ReturnType<typeof submitJob>>;
    try {
      const { fields, uploads, fromForm } = await readRequest(c, id);
      submitted = await submitJob(submitDeps, {
        kind,
        key,
        jobId: id,
        fields,
        uploads,
        fromForm,
        idempotencyKey,
      });
      if (!submitted.replayed && fields.webhook !== undefined) {
        await registerWebhook(db, id, checkWebhookUrl(fields.webhook, config.webhooks));
      }
    } catch (err) {
      await rm(uploadsDir(config.dataDir, id), { recursive: true, force: true });
      throw err;
    }
    if (submitted.replayed) {
      await rm(uploadsDir(config.dataDir, id), { recursive: true, force: true });
      c.header("Idempotent-Replayed", "true");
    }
    runner.notify();
    c.header("Location", jobPath(kind, submitted.job.job.id));
    const now = await waited(c, (await db.getJob(submitted.job.job.id)) ?? submitted.job);
    return c.json(jobJson(now), isOver(now) ? 200 : 202);
  });

  app.get("/", async (c) => {
    const parsed = ListJobsQuerySchema.safeParse(c.req.query());
    if (!parsed.success) throw new ApiError("invalid_field", describeZodError(parsed.error), 400);
    const { status, limit, before } = parsed.data;
    const key = c.var.apiKey;
    const beforeSeq = before ? (await visible(before, key)).job.seq : undefined;
    const found = await db.listJobs({
      kind: kind.name,
      keyId: key.role === "admin" ? null : key.id,
      limit,
      ...(status ? { status } : {}),
      ...(beforeSeq !== undefined ? { beforeSeq } : {}),
    });
    const last = found.at(-1);
    return c.json({
      jobs: found.map(jobJson),
      next:
        found.length === limit && last
          ? `/v1/${kind.resource}?limit=${limit}${status ? `&status=${status}` : ""}&before=${last.job.id}`
          : null,
    });
  });

  app.get("/:id", async (c) => {
    const found = await visible(c.req.param("id"), c.var.apiKey);
    return c.json(jobJson(await waited(c, found)));
  });

  // Server-sent events: "progress" with the job JSON whenever it changes, "done" when it ends.
  app.get("/:id/events", async (c) => {
    const first = await visible(c.req.param("id"), c.var.apiKey);
    return streamSSE(c, async (stream) => {
      const gone = new AbortController();
      stream.onAbort(() => gone.abort());
      let lastSent = "";
      for await (const job of watchJob(runner, db, first.job.id, gone.signal)) {
        const data = JSON.stringify(jobJson(job));
        const final = isOver(job);
        if (data === lastSent && !final) continue;
        lastSent = data;
        await stream.writeSSE({ event: final ? "done" : "progress", data });
      }
    });
  });

  app.post("/:id/cancel", async (c) => {
    const id = c.req.param("id");
    await visible(id, c.var.apiKey);
    if (!(await runner.cancel(id))) {
      throw new ApiError("already_finished", `${kind.singular} "${id}" has already finished.`, 409);
    }
    return c.json(jobJson(await visible(id, c.var.apiKey)));
  });

  app.delete("/:id", async (c) => {
    const id = c.req.param("id");
    await visible(id, c.var.apiKey);
    if (!(await deleteFinishedJob(db, config.dataDir, id))) {
      throw new ApiError(
        "not_finished",
        `${kind.singular} "${id}" is still queued or running; cancel it first (POST .../cancel).`,
        409,
      );
    }
    return c.json({ id, deleted: true });
  });

  /** Item n of a visible job once it succeeded: 404 when there is no such item, 409
   * item_not_ready before. */
  const succeededItem = async (id: string, n: string, key: Key) => {
    await visible(id, key);
    const index = /^\d+$/.test(n) ? Number(n) : -1;
    const item = index >= 0 ? await db.getItem(id, index) : null;
    if (!item) throw new ApiError("not_found", `${kind.singular} "${id}" has no item ${n}.`, 404);
    if (item.status !== "succeeded" || !item.outputs) {
      throw new ApiError(
        "item_not_ready",
        `item ${index} of ${kind.singular} "${id}" is ${item.status}${item.errorMessage ? `: ${hidePaths(item.errorMessage)}` : ""}`,
        409,
      );
    }
    return item;
  };

  /** Sends one output file of an item. */
  const sendOutput = (c: Context, item: JobItemRow, role: string) => {
    const path = item.outputs?.[role];
    if (!path) {
      throw new ApiError(
        "not_found",
        `item ${item.index} of ${kind.singular} "${item.jobId}" has no ${role} output (it has ${Object.keys(item.outputs ?? {}).join(", ")})`,
        404,
      );
    }
    const ext = path.split(".").pop() ?? "bin";
    return sendFile(c, path, {
      format: ext,
      sha256: item.outputSha256,
      filename: `${item.jobId}-${item.index}.${ext}`,
      missing: "the output file of this item is gone from the data dir",
    });
  };

  for (const role of kind.outputRoles) {
    app.get(`/:id/items/:n/${role}`, async (c) => {
      const item = await succeededItem(c.req.param("id"), c.req.param("n"), c.var.apiKey);
      if (role === "metadata") return c.json(item.metadata ?? {});
      if (role === "latents") {
        const query = LatentsQuerySchema.safeParse(c.req.query());
        if (!query.success) throw new ApiError("invalid_field", describeZodError(query.error), 400);
        if (query.data.format === "json") return c.json(item.metadata ?? {});
      }
      return sendOutput(c, item, role);
    });
  }

  // Item n's main output (?index=n, default 0), whatever its role: the generations' first
  // download route, served by every resource.
  app.get("/:id/content", async (c) => {
    const id = c.req.param("id");
    const { items } = await visible(id, c.var.apiKey);
    const raw = c.req.query("index") ?? "0";
    if (!/^\d+$/.test(raw) || Number(raw) >= items.length) {
      throw new ApiError("invalid_field", `index: ${raw} is not in 0..${items.length - 1}`, 400);
    }
    const item = await succeededItem(id, raw, c.var.apiKey);
    const role = Object.keys(item.outputs ?? {}).find((r) => r !== "metadata") ?? "";
    return sendOutput(c, item, role);
  });

  return app;
}
