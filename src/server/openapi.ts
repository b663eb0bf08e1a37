// /openapi.json, assembled from the zod schemas that validate the requests and describe the
// answers (z.toJSONSchema). Every operation has an operationId (made from its method and path),
// every /v1 operation answers 401 and every operation may answer 500; the statuses specific to a
// route are listed with it. tests/node/openapi.test.ts walks the app's routes and this document
// and fails on a route, status or parameter missing from either.

import { z } from "zod";
import { OUTPUT_FORMATS, VIDEO_FORMATS } from "../pipeline/media/output-formats.ts";
import { JOB_KINDS } from "../pipeline/work/job-kinds.ts";
import type { JobKind } from "../pipeline/work/kind-contract.ts";
import {
  ImportRunSchema,
  ListRunsQuerySchema,
  MetricsQuerySchema,
  StartRunSchema,
} from "./routes/runs.ts";
import {
  CreateKeySchema,
  DeletedSchema,
  ErrorSchema,
  HealthSchema,
  JobListSchema,
  JobSchema,
  KeyCreatedSchema,
  KeyEnvelopeSchema,
  KeyListSchema,
  KeySchema,
  LatentsQuerySchema,
  ListJobsQuerySchema,
  MetricsSchema,
  ModelsSchema,
  RunDetailSchema,
  RunEnvelopeSchema,
  RunImportSchema,
  RunListSchema,
  RunSchema,
} from "./schemas.ts";

type Json = Record<string, unknown>;

const idParam = { name: "id", in: "path", required: true, schema: { type: "string" } };

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: Json, description: string) => ({
  description,
  content: { "application/json": { schema } },
});
const errors = (...statuses: number[]) =>
  Object.fromEntries(statuses.map((s) => [String(s), json(ref("Error"), "error")]));

/** A request schema as JSON Schema (input side: defaults are optional). */
function input(schema: z.ZodType): Json {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, {
    io: "input",
    unrepresentable: "any",
  }) as Json;
  return rest;
}

function output(schema: z.ZodType): Json {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { unrepresentable: "any" }) as Json;
  return rest;
}

/** A kind's multipart form: its text fields and its file fields. */
function multipartSchema(kind: JobKind): Json {
  const schema = input(kind.request.form) as { properties?: Json; required?: string[] };
  const { fileFields, filesRequired, describeFiles } = kind.request;
  const files =
    fileFields[0] === "files"
      ? {
          files: {
            type: "array",
            items: { type: "string", format: "binary" },
            description: describeFiles,
          },
        }
      : Object.fromEntries(
          fileFields.map((f) => [
            f,
            { type: "string", format: "binary", description: describeFiles },
          ]),
        );
  return {
    type: "object",
    properties: { ...files, ...schema.properties },
    required: [...(filesRequired ? [fileFields[0] as string] : []), ...(schema.required ?? [])],
  };
}

function queryParameters(schema: z.ZodType): Json[] {
  const { properties = {}, required = [] } = input(schema) as {
    properties?: Record<string, Json>;
    required?: string[];
  };
  return Object.entries(properties).map(([name, s]) => ({
    name,
    in: "query",
    required: required.includes(name),
    schema: s,
  }));
}

const preferHeader = {
  name: "Prefer",
  in: "header",
  required: false,
  schema: { type: "string", example: "wait=30" },
  description: "wait=N (seconds, at most 60): answer when the job is over or after N seconds",
};

const sse = {
  description: "server-sent events: progress (the JSON on every change), then done",
  content: { "text/event-stream": { schema: { type: "string" } } },
};

/** What each output role's download answers. */
function roleContent(role: string): { content: Json; query?: z.ZodType } {
  const binary = { schema: { type: "string", format: "binary" } };
  if (role === "metadata")
    return { content: { "application/json": { schema: { type: "object" } } } };
  if (role === "latents") {
    return {
      content: {
        "application/octet-stream": binary,
        "application/json": { schema: { type: "object" } },
      },
      query: LatentsQuerySchema,
    };
  }
  return {
    content: Object.fromEntries(VIDEO_FORMATS.map((f) => [OUTPUT_FORMATS[f].mime, binary])),
  };
}

/** Every verb of one resource, from its kind (pipeline/work/job-kinds.ts). */
function jobPaths(kind: JobKind) {
  const path = kind.resource;
  const tag = kind.resource;
  const id = idParam;
  const n = { name: "n", in: "path", required: true, schema: { type: "integer", minimum: 0 } };
  const idempotencyHeader = {
    name: "Idempotency-Key",
    in: "header",
    required: false,
    schema: { type: "string" },
    description:
      "a retry with the same key and request returns the same job (Idempotent-Replayed: true); another request with it is 422 idempotency_key_reused",
  };
  const body: Record<string, Json> = {
    "multipart/form-data": { schema: multipartSchema(kind) },
  };
  if (kind.request.json) body["application/json"] = { schema: input(kind.request.json) };
  return {
    [`/v1/${path}`]: {
      get: {
        tags: [tag],
        summary: `list ${tag}, newest first (an admin key sees every key's)`,
        parameters: queryParameters(ListJobsQuerySchema),
        responses: { "200": json(ref("JobList"), "jobs and the next page"), ...errors(400, 404) },
      },
      post: {
        tags: [tag],
        summary: `start a ${kind.singular}; every input is checked before the 202`,
        parameters: [preferHeader, idempotencyHeader],
        requestBody: { required: true, content: body },
        responses: {
          "200": json(ref("Job"), "finished within Prefer: wait=N, or a replay"),
          "202": json(ref("Job"), "the job, queued"),
          ...errors(400, 404, 409, 413, 415, 422, 429),
        },
      },
    },
    [`/v1/${path}/{id}`]: {
      get: {
        tags: [tag],
        summary: "status, progress and per-item results",
        parameters: [id, preferHeader],
        responses: { "200": json(ref("Job"), "the job"), ...errors(404) },
      },
      delete: {
        tags: [tag],
        summary: "delete a finished job and its outputs (cancel an active one first)",
        parameters: [id],
        responses: { "200": json(ref("Deleted"), "deleted"), ...errors(404, 409) },
      },
    },
    [`/v1/${path}/{id}/cancel`]: {
      post: {
        tags: [tag],
        summary: "cancel a queued or running job",
        parameters: [id],
        responses: { "200": json(ref("Job"), "the canceled job"), ...errors(404, 409) },
      },
    },
    [`/v1/${path}/{id}/events`]: {
      get: {
        tags: [tag],
        summary: "follow the job",
        parameters: [id],
        responses: { "200": sse, ...errors(404) },
      },
    },
    [`/v1/${path}/{id}/content`]: {
      get: {
        tags: [tag],
        summary: "item `index`'s main output (video or latents); Range and If-None-Match honoured",
        parameters: [
          id,
          { name: "index", in: "query", required: false, schema: { type: "integer", minimum: 0 } },
        ],
        responses: {
          "200": { description: "the item's main output" },
          ...fileStatuses,
          ...errors(400, 404, 409),
        },
      },
    },
    ...Object.fromEntries(
      kind.outputRoles.map((role) => {
        const { content, query } = roleContent(role);
        return [
          `/v1/${path}/{id}/items/{n}/${role}`,
          {
            get: {
              tags: [tag],
              summary: `the item's ${role}; Range (206, 416) and If-None-Match (304) honoured`,
              parameters: [id, n, ...(query ? queryParameters(query) : [])],
              responses: {
                "200": { description: `the item's ${role}`, content },
                ...(role === "metadata" ? {} : fileStatuses),
                ...errors(...(query ? [400] : []), 404, 409),
              },
            },
          },
        ];
      }),
    ),
  };
}

const fileStatuses = {
  "206": { description: "the requested byte range" },
  "304": { description: "not modified (If-None-Match matched the ETag)" },
  "416": json(ref("Error"), "the range is outside the file"),
};

/**
 * e.g. get /v1/encodings -> listEncodings, get /v1/encodings/{id}/items/{n}/latents ->
 * getEncodingItemLatents, post /v1/encodings/{id}/cancel -> cancelEncoding.
 */
export function operationIdOf(method: string, path: string): string {
  const parts = path.split("/").filter((p) => p && p !== "v1");
  const endsWithParam = parts.at(-1)?.startsWith("{") ?? false;
  const hasParam = parts.some((p) => p.startsWith("{"));
  const names = parts.filter((p) => !p.startsWith("{"));
  const one = (w: string) => (w.endsWith("s") && !w.endsWith("ss") ? w.slice(0, -1) : w);
  const last = names.at(-1) ?? "";
  let verb: string;
  let words: string[];
  if (method === "get") {
    verb = hasParam || !last.endsWith("s") ? "get" : "list";
    words = names.map((w, i) => (i < names.length - 1 || endsWithParam ? one(w) : w));
  } else if (method === "post" && !hasParam) {
    verb = "create";
    words = names.map(one);
  } else if (method === "post") {
    verb = endsWithParam ? "post" : last;
    words = (endsWithParam ? names : names.slice(0, -1)).map(one);
  } else {
    verb = method;
    words = names.map(one);
  }
  const cap = (w: string) => (w ? (w[0] as string).toUpperCase() + w.slice(1) : w);
  return (
    verb +
    words
      .flatMap((w) => w.split(/[^a-zA-Z0-9]+/))
      .map(cap)
      .join("")
  );
}

/** Adds operationIds, 401 on every secured operation and 500 on every one. */
function finish(paths: Record<string, Record<string, Json>>): Record<string, Record<string, Json>> {
  for (const [path, methods] of Object.entries(paths)) {
    for (const [method, op] of Object.entries(methods)) {
      op.operationId ??= operationIdOf(method, path);
      const responses = op.responses as Json;
      if (!Array.isArray(op.security) || (op.security as unknown[]).length > 0) {
        responses["401"] ??= json(ref("Error"), "missing or invalid API key");
      }
      responses["500"] ??= json(ref("Error"), "internal error");
    }
  }
  return paths;
}

let cached: Json | null = null;

export function openApiDocument(): Json {
  if (cached) return cached;
  cached = {
    openapi: "3.1.0",
    info: {
      title: "diffusable",
      version: "0.1.0",
      description:
        "Video autoencoder and generation service. Every error is JSON {error: {code, message}}. /v1 routes need `Authorization: Bearer <key>`.",
    },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
      schemas: {
        Error: output(ErrorSchema),
        Job: output(JobSchema),
        JobList: output(JobListSchema),
        Deleted: output(DeletedSchema),
        Run: output(RunSchema),
        RunList: output(RunListSchema),
        RunEnvelope: output(RunEnvelopeSchema),
        RunDetail: output(RunDetailSchema),
        RunImport: output(RunImportSchema),
        Metrics: output(MetricsSchema),
        ApiKey: output(KeySchema),
        KeyList: output(KeyListSchema),
        KeyCreated: output(KeyCreatedSchema),
        KeyEnvelope: output(KeyEnvelopeSchema),
        Health: output(HealthSchema),
        Models: output(ModelsSchema),
        CreateKey: input(CreateKeySchema),
        StartRun: input(StartRunSchema),
        ImportRun: input(ImportRunSchema),
      },
    },
    security: [{ bearer: [] }],
    paths: finish({
      "/healthz": {
        get: { security: [], responses: { "200": json(ref("Health"), "alive") } },
      },
      "/openapi.json": {
        get: {
          security: [],
          operationId: "getOpenApi",
          responses: { "200": { description: "this document" } },
        },
      },
      "/v1/models": {
        get: { responses: { "200": json(ref("Models"), "loaded bundles") } },
      },
      ...Object.assign({}, ...JOB_KINDS.map(jobPaths)),
      "/v1/admin/keys": {
        get: {
          tags: ["admin"],
          responses: { "200": json(ref("KeyList"), "keys"), ...errors(403) },
        },
        post: {
          tags: ["admin"],
          requestBody: {
            required: true,
            content: { "application/json": { schema: ref("CreateKey") } },
          },
          responses: {
            "201": json(ref("KeyCreated"), "the key; the secret is shown only here"),
            ...errors(400, 403),
          },
        },
      },
      "/v1/admin/keys/{id}": {
        delete: {
          tags: ["admin"],
          summary: "revoke a key (never the last active admin key: 409 last_admin)",
          parameters: [idParam],
          responses: { "200": json(ref("KeyEnvelope"), "revoked"), ...errors(403, 404, 409) },
        },
      },
      "/v1/runs": {
        get: {
          tags: ["runs"],
          parameters: queryParameters(ListRunsQuerySchema),
          responses: {
            "200": json(ref("RunList"), "training runs, newest first; `next`: the next page"),
            ...errors(400),
          },
        },
        post: {
          tags: ["runs"],
          description:
            "admin keys only: start a trainer (autoencoder, or diffusion on a finished AE run)",
          requestBody: {
            required: true,
            content: { "application/json": { schema: ref("StartRun") } },
          },
          responses: {
            "202": json(ref("RunEnvelope"), "the run, status running"),
            ...errors(400, 403, 404, 409),
          },
        },
      },
      "/v1/runs/import": {
        post: {
          tags: ["runs"],
          operationId: "importRun",
          description:
            "admin keys only: import a run folder (events.jsonl) the server can read; idempotent",
          requestBody: {
            required: true,
            content: { "application/json": { schema: ref("ImportRun") } },
          },
          responses: {
            "200": json(ref("RunImport"), "every valid event is kept; rejected lines are listed"),
            ...errors(400, 403, 404, 409),
          },
        },
      },
      "/v1/runs/{id}": {
        get: {
          tags: ["runs"],
          parameters: [idParam],
          responses: {
            "200": json(ref("RunDetail"), "the run, its metric names, artifacts, linked runs"),
            ...errors(404),
          },
        },
      },
      "/v1/runs/{id}/stop": {
        post: {
          tags: ["runs"],
          operationId: "stopRun",
          description:
            "admin keys only: SIGTERM to a live run's trainer; it is settled as interrupted and can be resumed from its last checkpoint",
          parameters: [idParam],
          responses: {
            "202": json(ref("RunEnvelope"), "still running until the trainer exits"),
            ...errors(403, 404, 409),
          },
        },
      },
      "/v1/runs/{id}/metrics": {
        get: {
          tags: ["runs"],
          parameters: [idParam, ...queryParameters(MetricsQuerySchema)],
          responses: { "200": json(ref("Metrics"), "points by step"), ...errors(400, 404) },
        },
      },
    }),
  };
  return cached;
}
