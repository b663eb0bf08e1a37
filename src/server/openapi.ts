// /openapi.json, assembled from the zod schemas that validate the requests (z.toJSONSchema).

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
  EncodeOptionsSchema,
  ErrorSchema,
  GenerationRequestSchema,
  HealthSchema,
  JobSchema,
  KeySchema,
  ListJobsQuerySchema,
  ModelsSchema,
  ReconstructOptionsSchema,
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

function jobPaths(path: string, tag: string, options: z.ZodType, files: string, outputs: Json) {
  const id = { name: "id", in: "path", required: true, schema: { type: "string" } };
  const n = { name: "n", in: "path", required: true, schema: { type: "integer", minimum: 0 } };
  return {
    [`/v1/${path}`]: {
      get: {
        tags: [tag],
        summary: `list ${tag} jobs, newest first (an admin key sees every key's)`,
        parameters: queryParameters(ListJobsQuerySchema),
        responses: {
          "200": json(
            { type: "object", properties: { jobs: { type: "array", items: ref("Job") } } },
            "jobs",
          ),
          ...errors(400, 401),
        },
      },
      post: {
        tags: [tag],
        summary: `start a ${tag} job`,
        requestBody: multipart(options, files),
        responses: {
          "202": json(ref("Job"), "the job, queued"),
          ...errors(400, 401, 404, 413, 415, 422, 429),
        },
      },
    },
    [`/v1/${path}/{id}`]: {
      get: {
        tags: [tag],
        summary: "status, progress and per-item results",
        parameters: [id],
        responses: { "200": json(ref("Job"), "the job"), ...errors(401, 404) },
      },
      delete: {
        tags: [tag],
        summary: "cancel",
        parameters: [id],
        responses: { "200": json(ref("Job"), "the canceled job"), ...errors(401, 404, 409) },
      },
    },
    ...Object.fromEntries(
      Object.entries(outputs).map(([suffix, content]) => [
        `/v1/${path}/{id}/items/{n}/${suffix}`,
        {
          get: {
            tags: [tag],
            parameters: [id, n],
            responses: {
              "200": { description: `the item's ${suffix}`, content },
              ...errors(401, 404, 409),
            },
          },
        },
      ]),
    ),
  };
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
  cached = {
    openapi: "3.1.0",
    info: {
      title: "diffusable",
      version: "0.1.0",
      description:
        "Video autoencoder service. Every error is JSON {error: {code, message}}. /v1 routes need `Authorization: Bearer <key>`.",
    },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
      schemas: {
        Error: output(ErrorSchema),
        Job: output(JobSchema),
        ApiKey: output(KeySchema),
        Health: output(HealthSchema),
        Models: output(ModelsSchema),
        CreateKey: input(CreateKeySchema),
        GenerationRequest: input(GenerationRequestSchema),
        StartRun: input(StartRunSchema),
        ImportRun: input(ImportRunSchema),
      },
    },
    security: [{ bearer: [] }],
    paths: {
      "/healthz": {
        get: { security: [], responses: { "200": json(ref("Health"), "alive") } },
      },
      "/openapi.json": {
        get: { security: [], responses: { "200": { description: "this document" } } },
      },
      "/v1/models": {
        get: { responses: { "200": json(ref("Models"), "loaded bundles"), ...errors(401) } },
      },
      ...jobPaths(
        "encodings",
        "encodings",
        EncodeOptionsSchema,
        "videos (1..DIFFUSABLE_MAX_FILES)",
        {
          latents: {
            "application/octet-stream": { schema: { type: "string", format: "binary" } },
            "application/json": { schema: { type: "object" } },
          },
          metadata: { "application/json": { schema: { type: "object" } } },
        },
      ),
      ...jobPaths(
        "decodings",
        "decodings",
        DecodeOptionsSchema,
        "latents as .npy, shape (1,C,t,h,w)",
        {
          video,
        },
      ),
      ...jobPaths("reconstructions", "reconstructions", ReconstructOptionsSchema, "videos", {
        video,
      }),
      "/v1/generations": {
        get: {
          tags: ["generations"],
          parameters: queryParameters(ListJobsQuerySchema),
          responses: {
            "200": json({ type: "object" }, "generations, newest first"),
            ...errors(400, 401),
          },
        },
        post: {
          tags: ["generations"],
          parameters: [
            { name: "Prefer", in: "header", schema: { type: "string", example: "wait=30" } },
            { name: "Idempotency-Key", in: "header", schema: { type: "string" } },
          ],
          requestBody: {
            required: true,
            content: { "application/json": { schema: ref("GenerationRequest") } },
          },
          responses: {
            "200": json({ type: "object" }, "finished within Prefer: wait=N, or a replay"),
            "202": json({ type: "object" }, "the queued generation"),
            ...errors(400, 401, 422),
          },
        },
      },
      "/v1/generations/{id}": {
        get: {
          tags: ["generations"],
          parameters: [idParam],
          responses: {
            "200": json({ type: "object" }, "status, step of steps, seed"),
            ...errors(401, 404),
          },
        },
      },
      "/v1/generations/{id}/content": {
        get: {
          tags: ["generations"],
          parameters: [
            idParam,
            { name: "index", in: "query", schema: { type: "integer", minimum: 0 } },
          ],
          responses: {
            "200": {
              description: `video i (${VIDEO_FORMATS.join(", ")}) or its latent (.npy); Range and If-None-Match honoured`,
            },
            ...errors(400, 401, 404, 409),
          },
        },
      },
      "/v1/generations/{id}/events": {
        get: {
          tags: ["generations"],
          parameters: [idParam],
          responses: {
            "200": {
              description: "SSE: progress events, then done with the final status",
              content: { "text/event-stream": { schema: { type: "string" } } },
            },
            ...errors(401, 404),
          },
        },
      },
      "/v1/generations/{id}/cancel": {
        post: {
          tags: ["generations"],
          parameters: [idParam],
          responses: { "200": json({ type: "object" }, "canceled"), ...errors(401, 404, 409) },
        },
      },
      "/v1/admin/keys": {
        get: {
          tags: ["admin"],
          responses: {
            "200": json(
              { type: "object", properties: { keys: { type: "array", items: ref("ApiKey") } } },
              "keys",
            ),
            ...errors(401, 403),
          },
        },
        post: {
          tags: ["admin"],
          requestBody: {
            required: true,
            content: { "application/json": { schema: ref("CreateKey") } },
          },
          responses: {
            "201": json(
              { type: "object", properties: { key: ref("ApiKey"), secret: { type: "string" } } },
              "the key; the secret is shown only here",
            ),
            ...errors(400, 401, 403),
          },
        },
      },
      "/v1/runs": {
        get: {
          tags: ["runs"],
          parameters: queryParameters(ListRunsQuerySchema),
          responses: {
            "200": json({ type: "object" }, "training runs, newest first; `next`: the next page"),
            ...errors(400, 401),
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
            "202": json({ type: "object" }, "the run, status running"),
            ...errors(400, 401, 403, 404, 409),
          },
        },
      },
      "/v1/runs/import": {
        post: {
          tags: ["runs"],
          description:
            "admin keys only: import a run folder (events.jsonl) the server can read; idempotent",
          requestBody: {
            required: true,
            content: { "application/json": { schema: ref("ImportRun") } },
          },
          responses: {
            "200": json(
              { type: "object" },
              "{run, accepted, added, rejected: [{line, reason}]}: every valid event is kept",
            ),
            ...errors(400, 401, 403, 404, 409),
          },
        },
      },
      "/v1/runs/{id}": {
        get: {
          tags: ["runs"],
          parameters: [idParam],
          responses: {
            "200": json(
              { type: "object" },
              "the run, its metric names, artifacts, autoencoder and diffusion runs",
            ),
            ...errors(401, 404),
          },
        },
      },
      "/v1/runs/{id}/stop": {
        post: {
          tags: ["runs"],
          description:
            "admin keys only: SIGTERM to a live run's trainer; it is settled as interrupted and can be resumed from its last checkpoint",
          parameters: [idParam],
          responses: {
            "202": json({ type: "object" }, "{run}: still running until the trainer exits"),
            ...errors(401, 403, 404, 409),
          },
        },
      },
      "/v1/runs/{id}/metrics": {
        get: {
          tags: ["runs"],
          parameters: [idParam, ...queryParameters(MetricsQuerySchema)],
          responses: {
            "200": json({ type: "object" }, "{run, name, points: [{step, value, time}]} by step"),
            ...errors(400, 401, 404),
          },
        },
      },
      "/v1/admin/keys/{id}": {
        delete: {
          tags: ["admin"],
          parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }],
          responses: { "200": json({ type: "object" }, "revoked"), ...errors(401, 403, 404) },
        },
      },
    },
  };
  return cached;
}
