// The HTTP layer's errors and the one handler that turns anything thrown into
// `{ "error": { "code", "message" } }` with the right status: every AppError (pipeline, runs,
// HTTP) answers with its own code, message, status and headers; anything else is a logged 500.

import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { AppError, type AppErrorOptions } from "../app-error.ts";
import { drainRequest } from "./drain.ts";

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

/** The client closed the connection before its request was read (ECONNRESET, "aborted"). */
export function isClientGone(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return (
    code === "ECONNRESET" ||
    code === "ECONNABORTED" ||
    code === "EPIPE" ||
    code === "ERR_STREAM_PREMATURE_CLOSE"
  );
}

export async function onError(err: Error, c: Context): Promise<Response> {
  if (isClientGone(err) && !(err instanceof AppError)) {
    // Nobody is left to answer: one line in the log, no stack.
    const code = (err as { code?: string }).code;
    console.error(`${c.req.method} ${c.req.path}: the client closed the connection (${code})`);
    c.header("Connection", "close");
    return c.json(errorBody("client_closed", "the client closed the connection"), 400);
  }
  const api = toApiError(err);
  if (api.status >= 500) console.error(`${c.req.method} ${c.req.path}:`, err);
  for (const [name, value] of Object.entries(api.headers)) c.header(name, value);
  // The request body may be unread (a 401, 413, 415 or 429 before the upload was consumed): read
  // and discard it (up to a bound, drain.ts) so that a client still sending it gets this answer
  // rather than EPIPE; past the bound, or when the upload parser gave up on it, close the
  // connection so that the client does not send its next request on a socket mid-body.
  const hasBody = c.req.header("content-length") || c.req.header("transfer-encoding");
  const drained = (err as { bodyDrained?: boolean }).bodyDrained ?? (await drainRequest(c));
  if (hasBody && !drained) c.header("Connection", "close");
  return c.json(errorBody(api.code, api.message), api.status as ContentfulStatusCode);
}

export function notFound(c: Context): Response {
  return c.json(errorBody("not_found", `no route for ${c.req.method} ${c.req.path}`), 404);
}

/** A Hono route path ("/v1/encodings/:id", "/admin/:dir{assets|vendor}/*") as a RegExp. */
function routePattern(path: string): RegExp {
  let re = "";
  for (const part of path.split(/(:\w+(?:\{[^}]*\})?|\*)/)) {
    if (part === "*") re += ".*";
    else if (part.startsWith(":")) {
      const custom = /\{([^}]*)\}$/.exec(part)?.[1];
      re += custom ? `(?:${custom})` : "[^/]+";
    } else re += part.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}/?$`);
}

/** The not-found handler of an app: 405 with Allow when the path is a route for other methods,
 *  else 404. `routes` is read on first use (every route is registered by then). */
export function notFoundOrNotAllowed(routes: () => readonly { method: string; path: string }[]) {
  let patterns: { method: string; re: RegExp }[] | null = null;
  return (c: Context): Response => {
    patterns ??= routes()
      .filter((r) => r.method !== "ALL")
      .map((r) => ({ method: r.method, re: routePattern(r.path) }));
    const allowed = new Set(patterns.filter((p) => p.re.test(c.req.path)).map((p) => p.method));
    if (allowed.size === 0 || allowed.has(c.req.method)) return notFound(c);
    if (allowed.has("GET")) allowed.add("HEAD");
    const allow = [...allowed].sort().join(", ");
    c.header("Allow", allow);
    return c.json(
      errorBody(
        "method_not_allowed",
        `${c.req.method} is not allowed on ${c.req.path}; it allows ${allow}`,
      ),
      405,
    );
  };
}
