// The one error type of the application. Every error that should reach a client extends AppError
// (PipelineError, RunError, ApiError, ...) with the same arguments in the same order: a stable
// `code` (tests, clients and the HTTP layer match on it), a message for people (it carries the
// underlying tool's own words: ffmpeg's stderr, onnxruntime's message), and the HTTP status the
// server answers with. server/api-error.ts's onError is the one place that turns it into a reply.

export interface AppErrorOptions {
  cause?: unknown;
  /** Headers the HTTP reply carries (e.g. Retry-After, WWW-Authenticate). */
  headers?: Record<string, string>;
}

export class AppError extends Error {
  override name = "AppError";
  readonly headers: Record<string, string>;
  constructor(
    readonly code: string,
    message: string,
    readonly status: number = 500,
    options: AppErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.headers = options.headers ?? {};
  }
}

/** Whether err is an AppError (of this code, when given). */
export function isAppError(err: unknown, code?: string): err is AppError {
  return err instanceof AppError && (code === undefined || err.code === code);
}

/** An error's code and message as recorded with failed work: "internal" for anything unknown. */
export function errorInfo(err: unknown): { code: string; message: string } {
  if (err instanceof AppError) return { code: err.code, message: err.message };
  const message = err instanceof Error ? err.message : String(err);
  return { code: "internal", message };
}
