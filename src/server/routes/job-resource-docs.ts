// What the job resources' route definitions (job-resource.ts) say of their requests and answers
// beyond the zod schemas in server/schemas.ts: the headers they read, each kind's request body
// (its multipart form and, for a kind that takes one, its JSON), and each output role's download.

import { z } from "zod";
import { OUTPUT_FORMATS, VIDEO_FORMATS } from "../../pipeline/media/output-formats.ts";
import type { JobKind } from "../../pipeline/work/kind-contract.ts";
import { type JsonSchemaObject, jsonResponse, requestJsonSchema } from "../openapi.ts";
import { ErrorSchema, LatentsQuerySchema } from "../schemas.ts";

const prefer = z.string().optional().meta({
  description: "wait=N (seconds, at most 60): answer when the job is over or after N seconds",
  example: "wait=30",
});

/** The headers of GET /:id. */
export const WaitHeaders = z.object({ Prefer: prefer });

/** The headers of POST /. */
export const SubmitHeaders = z.object({
  Prefer: prefer,
  "Idempotency-Key": z.string().optional().meta({
    description:
      "a retry with the same key and request returns the same job (Idempotent-Replayed: true); another request with it is 422 idempotency_key_reused",
  }),
});

/** A kind's multipart form: its text fields and its file fields. */
function multipartSchema(kind: JobKind): JsonSchemaObject {
  const schema = requestJsonSchema(kind.request.form);
  const { fileFields, filesRequired, describeFiles } = kind.request;
  const file = { type: "string", format: "binary", description: describeFiles };
  const files =
    fileFields[0] === "files"
      ? {
          files: {
            type: "array",
            items: { type: "string", format: "binary" },
            description: describeFiles,
          },
        }
      : Object.fromEntries(fileFields.map((f) => [f, file]));
  return {
    type: "object",
    properties: { ...files, ...schema.properties },
    required: [...(filesRequired ? [fileFields[0] as string] : []), ...(schema.required ?? [])],
  } as JsonSchemaObject;
}

/** The body of POST /: multipart, and JSON for a kind that takes it. Read by the handler (the
 * uploads are streamed to disk, each file checked), so described here as JSON Schema. */
export function submitBody(kind: JobKind) {
  const json = kind.request.json;
  return {
    required: true,
    content: {
      "multipart/form-data": { schema: multipartSchema(kind) },
      ...(json ? { "application/json": { schema: requestJsonSchema(json) } } : {}),
    },
  };
}

/** The statuses of a download of a stored file (send-file.ts). */
export const fileStatuses = {
  206: { description: "the requested byte range" },
  304: { description: "not modified (If-None-Match matched the ETag)" },
  416: jsonResponse(ErrorSchema, "the range is outside the file"),
};

const binary = { schema: { type: "string" as const, format: "binary" } };

/** What the download of an output role answers, and the query it takes. */
export function roleDownload(role: string) {
  if (role === "metadata") {
    return { content: { "application/json": { schema: { type: "object" as const } } } };
  }
  if (role === "latents") {
    return {
      content: {
        "application/octet-stream": binary,
        "application/json": { schema: { type: "object" as const } },
      },
      query: LatentsQuerySchema,
    };
  }
  return {
    content: Object.fromEntries(VIDEO_FORMATS.map((f) => [OUTPUT_FORMATS[f].mime, binary])),
  };
}

/** The server-sent events of GET /:id/events. */
export const eventStream = {
  description: "server-sent events: progress (the JSON on every change), then done",
  content: { "text/event-stream": { schema: { type: "string" as const } } },
};
