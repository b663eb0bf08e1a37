// The pipeline's errors: an AppError (src/app-error.ts) whose status is one the pipeline may ask
// for. VideoError (media/video.ts) narrows the code further.

import { AppError } from "../app-error.ts";

export type ErrorStatus = 400 | 404 | 413 | 422 | 500;

export class PipelineError extends AppError {
  override name = "PipelineError";
  declare readonly status: ErrorStatus;
  constructor(
    code: string,
    message: string,
    status: ErrorStatus = 500,
    options?: { cause?: unknown },
  ) {
    super(code, message, status, options);
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
