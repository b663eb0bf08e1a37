// The one route factory of the job resources: one call per kind of the registry
// (pipeline/work/job-kinds.ts) gives /v1/<resource> every verb of the README's "Resources and
// verbs" table, with the same list envelope, the same error codes, Idempotency-Key on POST and
// Prefer: wait on POST and GET. HTTP only: the body is read here (multipart streamed to disk by
// uploads.ts, or JSON), the work is the submit use case's (pipeline/work/submit-job.ts), the
// waiting job-watch.ts's, the JSON job-view.ts's. Each route is defined where it is mounted
// (app.openapi): its parameters, headers, body and statuses make /openapi.json.

import { rm } from "node:fs/promises";
import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import { streamSSE } from "hono/streaming";
import { z } from "zod";
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
import { documentedRoutes, errorResponses, IdParams, jsonResponse, route } from "../openapi.ts";
import { hidePaths } from "../redact.ts";
import {
  DeletedSchema,
  describeZodError,
  JobListSchema,
  JobSchema,
  ListJobsQuerySchema,
} from "../schemas.ts";
import { sendFile } from "../send-file.ts";
import { receiveUploads } from "../uploads.ts";
import { checkWebhookUrl, registerWebhook } from "../webhooks.ts";
import {
  eventStream,
  fileStatuses,
  roleDownload,
  SubmitHeaders,
  submitBody,
  WaitHeaders,
} from "./job-resource-docs.ts";

/** The longest `Prefer: wait=N` honoured, in seconds. */
export const MAX_WAIT_S = 60;

/** An item's index, as a path parameter. */
const itemIndex = z.string().regex(/^\d+$/, "must be a whole number (an item's index)");

/** The path parameters of an item's download (loadItem answers 404 for an `n` of no item). */
const ItemParams = IdParams.extend({ n: itemIndex });

/** The query of GET /:id/content (index is checked by the handler: 400 naming it). */
const ContentQuery = z.object({
  index: z.string().default("0").meta({ description: "the item, a whole number (default 0)" }),
});

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
  const app = documentedRoutes();
  const tags = [kind.resource];

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

  /** c.var.job: the job of the path's id if this key may see it (404 before anything else of
   * the request is checked). */
  const loadJob = createMiddleware<{ Variables: AppEnv["Variables"] & { job: JobWithItems } }>(
    async (c, next) => {
      c.set("job", await visible(c.req.param("id") as string, c.var.apiKey));
      await next();
    },
  );

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

  /** c.var.item: item n of the path's job once it succeeded (404, 409 before the query is
   * checked). */
  const loadItem = createMiddleware<{ Variables: AppEnv["Variables"] & { item: JobItemRow } }>(
    async (c, next) => {
      c.set(
        "item",
        await succeededItem(c.req.param("id") as string, c.req.param("n") as string, c.var.apiKey),
      );
      await next();
    },
  );

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

  app.openapi(
    route({
      method: "post",
      path: "/",
      tags,
      summary: `start a ${kind.singular}; every input is checked before the 202`,
      request: { headers: SubmitHeaders, body: submitBody(kind) },
      responses: {
        200: jsonResponse(JobSchema, "finished within Prefer: wait=N, or a replay"),
        202: jsonResponse(JobSchema, "the job, queued"),
        ...errorResponses(400, 404, 409, 413, 415, 422, 429),
      },
    }),
    async (c) => {
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
    },
  );

  app.openapi(
    route({
      method: "get",
      path: "/",
      tags,
      summary: `list ${kind.resource}, newest first (an admin key sees every key's)`,
      request: { query: ListJobsQuerySchema },
      responses: {
        200: jsonResponse(JobListSchema, "jobs and the next page"),
        ...errorResponses(400, 404),
      },
    }),
    async (c) => {
      const { status, limit, before } = c.req.valid("query");
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
      return c.json(
        {
          jobs: found.map(jobJson),
          next:
            found.length === limit && last
              ? `/v1/${kind.resource}?limit=${limit}${status ? `&status=${status}` : ""}&before=${last.job.id}`
              : null,
        },
        200,
      );
    },
  );

  app.openapi(
    route({
      method: "get",
      path: "/{id}",
      tags,
      summary: "status, progress and per-item results",
      middleware: loadJob,
      request: { params: IdParams, headers: WaitHeaders },
      responses: { 200: jsonResponse(JobSchema, "the job"), ...errorResponses(404) },
    }),
    async (c) => c.json(jobJson(await waited(c, c.var.job)), 200),
  );

  // Server-sent events: "progress" with the job JSON whenever it changes, "done" when it ends.
  app.openapi(
    route({
      method: "get",
      path: "/{id}/events",
      tags,
      summary: "follow the job",
      middleware: loadJob,
      request: { params: IdParams },
      responses: { 200: eventStream, ...errorResponses(404) },
    }),
    (c) => {
      const first = c.var.job;
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
    },
  );

  app.openapi(
    route({
      method: "post",
      path: "/{id}/cancel",
      tags,
      summary: "cancel a queued or running job",
      middleware: loadJob,
      request: { params: IdParams },
      responses: { 200: jsonResponse(JobSchema, "the canceled job"), ...errorResponses(404, 409) },
    }),
    async (c) => {
      const id = c.var.job.job.id;
      if (!(await runner.cancel(id))) {
        throw new ApiError(
          "already_finished",
          `${kind.singular} "${id}" has already finished.`,
          409,
        );
      }
      return c.json(jobJson(await visible(id, c.var.apiKey)), 200);
    },
  );

  app.openapi(
    route({
      method: "delete",
      path: "/{id}",
      tags,
      summary: "delete a finished job and its outputs (cancel an active one first)",
      middleware: loadJob,
      request: { params: IdParams },
      responses: { 200: jsonResponse(DeletedSchema, "deleted"), ...errorResponses(404, 409) },
    }),
    async (c) => {
      const id = c.var.job.job.id;
      if (!(await deleteFinishedJob(db, config.dataDir, id))) {
        throw new ApiError(
          "not_finished",
          `${kind.singular} "${id}" is still queued or running; cancel it first (POST .../cancel).`,
          409,
        );
      }
      return c.json({ id, deleted: true as const }, 200);
    },
  );

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
    const { content, query } = roleDownload(role);
    app.openapi(
      route({
        method: "get",
        path: `/{id}/items/{n}/${role}`,
        tags,
        summary: `the item's ${role}; Range (206, 416) and If-None-Match (304) honoured`,
        middleware: loadItem,
        request: { params: ItemParams, ...(query ? { query } : {}) },
        responses: {
          200: { description: `the item's ${role}`, content },
          ...(role === "metadata" ? {} : fileStatuses),
          ...errorResponses(...(query ? [400] : []), 404, 409),
        },
      }),
      (c) => {
        const item = c.var.item;
        if (role === "metadata") return c.json(item.metadata ?? {});
        if (role === "latents" && c.req.query("format") === "json")
          return c.json(item.metadata ?? {});
        return sendOutput(c, item, role);
      },
    );
  }

  // Item n's main output (?index=n, default 0), whatever its role: the generations' first
  // download route, served by every resource.
  app.openapi(
    route({
      method: "get",
      path: "/{id}/content",
      tags,
      summary: "item `index`'s main output (video or latents); Range and If-None-Match honoured",
      middleware: loadJob,
      request: { params: IdParams, query: ContentQuery },
      responses: {
        200: { description: "the item's main output" },
        ...fileStatuses,
        ...errorResponses(400, 404, 409),
      },
    }),
    async (c) => {
      const { job, items } = c.var.job;
      const { index } = c.req.valid("query");
      if (!/^\d+$/.test(index) || Number(index) >= items.length) {
        throw new ApiError(
          "invalid_field",
          `index: ${index} is not in 0..${items.length - 1}`,
          400,
        );
      }
      const item = await succeededItem(job.id, index, c.var.apiKey);
      const role = Object.keys(item.outputs ?? {}).find((r) => r !== "metadata") ?? "";
      return sendOutput(c, item, role);
    },
  );

  return app;
}
