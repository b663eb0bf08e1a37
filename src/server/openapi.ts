// /openapi.json, assembled from the zod schemas that validate the requests and describe the
// answers (z.toJSONSchema). Every operation has an operationId (made from its method and path),
// every /v1 operation answers 401 and every operation may answer 500; the statuses specific to a
// route are listed with it. tests/node/openapi.test.ts walks the app's routes and this document
// and fails on a route, status or parameter missing from either.

import { z } from "zod";
import { OUTPUT_FORMATS, VIDEO_FORMATS } from "../pipeline/media/output-formats.ts";
import {
  ImportRunSchema,
  ListRunsQuerySchema,
  MetricsQuerySchema,
  StartRunSchema,
} from "./routes/runs.ts";
import {
  CreateKeySchema,
  DecodeOptionsSchema,
  DeletedSchema,
  EncodeOptionsSchema,
  ErrorSchema,
  GenerationFormSchema,
  GenerationListSchema,
  GenerationRequestSchema,
  GenerationSchema,
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
  ReconstructOptionsSchema,
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

function multipart(options: z.ZodType, fileDescription: string): Json {
  const schema = input(options) as { properties?: Json; required?: string[] };
  return {
    required: true,
    content: {
      "multipart/form-data": {
        schema: {
          type: "object",
          properties: {
            files: {
              type: "array",
              items: { type: "string", format: "binary" },
              description: fileDescription,
            },
            ...schema.properties,
          },
          required: ["files", ...(schema.required ?? [])],
        },
      },
    },
  };
}

/** POST /v1/generations as multipart: the form fields, and an image or a video (or neither,
 * with `encoding`). */
function generationForm(): Json {
  const schema = input(GenerationFormSchema) as { properties?: Json; required?: string[] };
  return {
    type: "object",
    properties: {
      image: {
        type: "string",
        format: "binary",
        description:
          "image-to-video: a PNG, JPEG or WebP (or a one-frame video), resized and centre-cropped to the bundle's resolution",
      },
      video: {
        type: "string",
        format: "binary",
        description: "extension: a clip to continue (checked as a whole-mode encoding is)",
      },
      ...schema.properties,
    },
    required: schema.required ?? [],
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

type Outputs = Record<string, { content: Json; query?: z.ZodType }>;

function jobPaths(path: string, tag: string, options: z.ZodType, files: string, outputs: Outputs) {
  const id = idParam;
  const n = { name: "n", in: "path", required: true, schema: { type: "integer", minimum: 0 } };
  return {
    [`/v1/${path}`]: {
      get: {
        tags: [tag],
        summary: `list ${tag} jobs, newest first (an admin key sees every key's)`,
        parameters: queryParameters(ListJobsQuerySchema),
        responses: { "200": json(ref("JobList"), "jobs and the next page"), ...errors(400, 404) },
      },
      post: {
        tags: [tag],
        summary: `start a ${tag} job`,
        parameters: [preferHeader],
        requestBody: multipart(options, files),
        responses: {
          "200": json(ref("Job"), "finished within Prefer: wait=N"),
          "202": json(ref("Job"), "the job, queued"),
          ...errors(400, 404, 413, 415, 422, 429),
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
    ...Object.fromEntries(
      Object.entries(outputs).map(([suffix, { content, query }]) => [
        `/v1/${path}/{id}/items/{n}/${suffix}`,
        {
          get: {
            tags: [tag],
            summary: `the item's ${suffix}; Range (206, 416) and If-None-Match (304) honoured`,
            parameters: [id, n, ...(query ? queryParameters(query) : [])],
            responses: {
              "200": { description: `the item's ${suffix}`, content },
              ...(suffix === "metadata" ? {} : fileStatuses),
              ...errors(...(query ? [400] : []), 404, 409),
            },
          },
        },
      ]),
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
  const video = Object.fromEntries(
    VIDEO_FORMATS.map((f) => [
      OUTPUT_FORMATS[f].mime,
      { schema: { type: "string", format: "binary" } },
    ]),
  );
  const binary = { schema: { type: "string", format: "binary" } };
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
        Generation: output(GenerationSchema),
        GenerationList: output(GenerationListSchema),
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
        GenerationRequest: input(GenerationRequestSchema),
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
      ...jobPaths(
        "encodings",
        "encodings",
        EncodeOptionsSchema,
        "videos (1..DIFFUSABLE_MAX_FILES); with size=native each frame, rounded to the spatial factor, at most DIFFUSABLE_MAX_PIXELS pixels (else 422 too_large)",
        {
          latents: {
            content: {
              "application/octet-stream": binary,
              "application/json": { schema: { type: "object" } },
            },
            query: LatentsQuerySchema,
          },
          metadata: { content: { "application/json": { schema: { type: "object" } } } },
        },
      ),
      ...jobPaths(
        "decodings",
        "decodings",
        DecodeOptionsSchema,
        "latents as .npy, shape (1,C,t,h,w)",
        {
          video: { content: video },
        },
      ),
      ...jobPaths(
        "reconstructions",
        "reconstructions",
        ReconstructOptionsSchema,
        "videos; with size=native each frame, rounded to the spatial factor, at most DIFFUSABLE_MAX_PIXELS pixels (else 422 too_large)",
        {
          video: { content: video },
        },
      ),
      "/v1/generations": {
        get: {
          tags: ["generations"],
          parameters: queryParameters(ListJobsQuerySchema),
          responses: {
            "200": json(ref("GenerationList"), "generations, newest first, and the next page"),
            ...errors(400, 404),
          },
        },
        post: {
          tags: ["generations"],
          parameters: [
            preferHeader,
            { name: "Idempotency-Key", in: "header", required: false, schema: { type: "string" } },
          ],
          description:
            "JSON: from a label (and optionally `encoding`, an encoding whose latents are continued). multipart/form-data: the same fields as text, with `image` (image-to-video: the image is latent frame 0) or `video` (extension: `frames` more frames are generated in windows of the denoiser's training length, manifest `conditioning`, each continuing the last frames before it re-encoded as a clip of their own; `output` says what comes back). Inputs are checked before the 202.",
          requestBody: {
            required: true,
            content: {
              "application/json": { schema: ref("GenerationRequest") },
              "multipart/form-data": { schema: generationForm() },
            },
          },
          responses: {
            "200": json(ref("Generation"), "finished within Prefer: wait=N, or a replay"),
            "202": json(ref("Generation"), "the queued generation"),
            ...errors(400, 404, 409, 413, 415, 422, 429),
          },
        },
      },
      "/v1/generations/{id}": {
        get: {
          tags: ["generations"],
          parameters: [idParam, preferHeader],
          responses: {
            "200": json(ref("Generation"), "status, step of steps, seed"),
            ...errors(404),
          },
        },
        delete: {
          tags: ["generations"],
          summary: "delete a finished generation and its outputs",
          parameters: [idParam],
          responses: { "200": json(ref("Deleted"), "deleted"), ...errors(404, 409) },
        },
      },
      "/v1/generations/{id}/content": {
        get: {
          tags: ["generations"],
          parameters: [
            idParam,
            {
              name: "index",
              in: "query",
              required: false,
              schema: { type: "integer", minimum: 0 },
            },
          ],
          responses: {
            "200": {
              description: `video i (${VIDEO_FORMATS.join(", ")}) or its latent (.npy); Range and If-None-Match honoured`,
            },
            ...fileStatuses,
            ...errors(400, 404, 409),
          },
        },
      },
      "/v1/generations/{id}/events": {
        get: {
          tags: ["generations"],
          parameters: [idParam],
          responses: { "200": sse, ...errors(404) },
        },
      },
      "/v1/generations/{id}/cancel": {
        post: {
          tags: ["generations"],
          parameters: [idParam],
          responses: { "200": json(ref("Generation"), "canceled"), ...errors(404, 409) },
        },
      },
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
