// The one error type of the run registry: a stable `code`, the HTTP status the server answers
// with, and a message that starts with the field or path at fault.

export type RunErrorStatus = 400 | 404 | 409;

export class RunError extends Error {
  override name = "RunError";
  constructor(
    readonly code: string,
    readonly status: RunErrorStatus,
    message: string,
  ) {
    super(message);
  }
}
