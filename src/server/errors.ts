// The one error type of the HTTP layer and the one handler that turns anything thrown into
// `{ "error": { "code", "message" } }` with the right status.

import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { PipelineError } from "../pipeline/pipeline-error.ts";

export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export interface ErrorBody {
  error: { code: string; message: string };
}

export function errorBody(code: string, message: string): ErrorBody {
  return { error: { code, message } };
}

/** Maps an error to a status and body; unknown errors are 500 "internal" and logged. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof PipelineError) return new ApiError(err.status, err.code, err.message);
  const status = (err as { status?: unknown })?.status;
  if (status === 413) {
    return new ApiError(413, "payload_too_large", "the request body is larger than allowed");
  }
  return new ApiError(500, "internal", "internal server error");
}

export function onError(err: Error, c: Context): Response {
  const api = toApiError(err);
  if (api.status >= 500) console.error(`${c.req.method} ${c.req.path}:`, err);
  for (const [name, value] of Object.entries(api.headers)) c.header(name, value);
  // The request body may be unread (e.g. a 413 or 401 before the upload was consumed): close the
  // connection so that the client does not send its next request on a socket mid-body.
  if (c.req.header("content-length") || c.req.header("transfer-encoding")) {
    c.header("Connection", "close");
  }
  return c.json(errorBody(api.code, api.message), api.status);
}

export function notFound(c: Context): Response {
  return c.json(errorBody("not_found", `no route for ${c.req.method} ${c.req.path}`), 404);
}
