// The HTTP layer's errors and the one handler that turns anything thrown into
// `{ "error": { "code", "message" } }` with the right status: every AppError (pipeline, runs,
// HTTP) answers with its own code, message, status and headers; anything else is a logged 500.

import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { AppError, type AppErrorOptions } from "../app-error.ts";
import { drainBody } from "./drain.ts";

/** An error raised by the HTTP layer itself (auth, parsing, quotas, routing). */
export class ApiError extends AppError {
  override name = "ApiError";
  declare readonly status: ContentfulStatusCode;
  constructor(
    code: string,
    message: string,
    status: ContentfulStatusCode,
    options?: AppErrorOptions,
  ) {
    super(code, message, status, options);
  }
}

export interface ErrorBody {
  error: { code: string; message: string };
}

export function errorBody(code: string, message: string): ErrorBody {
  return { error: { code, message } };
}

/** Maps an error to a status and body; unknown errors are 500 "internal" and logged. */
export function toApiError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  const status = (err as { status?: unknown })?.status;
  if (status === 413) {
    return new ApiError("payload_too_large", "the request body is larger than allowed", 413);
  }
  return new ApiError("internal", "internal server error", 500);
}

export async function onError(err: Error, c: Context): Promise<Response> {
  const api = toApiError(err);
  if (api.status >= 500) console.error(`${c.req.method} ${c.req.path}:`, err);
  for (const [name, value] of Object.entries(api.headers)) c.header(name, value);
  // The request body may be unread (a 401, 413, 415 or 429 before the upload was consumed): read
  // and discard it (up to a bound, drain.ts) so that a client still sending it gets this answer
  // rather than EPIPE; past the bound, or when the upload parser gave up on it, close the
  // connection so that the client does not send its next request on a socket mid-body.
  const hasBody = c.req.header("content-length") || c.req.header("transfer-encoding");
  const drained = (err as { bodyDrained?: boolean }).bodyDrained ?? (await drainBody(c.req.raw));
  if (hasBody && !drained) c.header("Connection", "close");
  return c.json(errorBody(api.code, api.message), api.status as ContentfulStatusCode);
}

export function notFound(c: Context): Response {
  return c.json(errorBody("not_found", `no route for ${c.req.method} ${c.req.path}`), 404);
}
