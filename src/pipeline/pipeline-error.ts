// The one error type of the pipeline. `code` is stable (tests, clients and the HTTP layer match on
// it); `status` is the HTTP status the server should answer with; the message is for people and
// carries the underlying tool's own words (ffmpeg's stderr, onnxruntime's message).

export type ErrorStatus = 400 | 404 | 413 | 422 | 500;

export class PipelineError extends Error {
  override name = "PipelineError";
  constructor(
    readonly code: string,
    message: string,
    readonly status: ErrorStatus = 500,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isPipelineError(err: unknown, code?: string): err is PipelineError {
  return err instanceof PipelineError && (code === undefined || err.code === code);
}

/** An AbortSignal's reason as a PipelineError (code "aborted"). */
export function abortError(signal: AbortSignal): PipelineError {
  const reason = signal.reason instanceof Error ? signal.reason.message : String(signal.reason);
  return new PipelineError("aborted", `aborted: ${reason}`, 500, { cause: signal.reason });
}
