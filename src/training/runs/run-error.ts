// The run registry's errors: an AppError (src/app-error.ts) whose message starts with the field
// or path at fault.

import { AppError } from "../../app-error.ts";

export type RunErrorStatus = 400 | 404 | 409;

export class RunError extends AppError {
  override name = "RunError";
  declare readonly status: RunErrorStatus;
  constructor(code: string, message: string, status: RunErrorStatus) {
    super(code, message, status);
  }
}
