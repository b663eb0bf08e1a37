// The facts about the machine and the checkout that every layer may read, each defined once:
// the repository root, the Python interpreter that runs the trainers (DIFFUSABLE_PYTHON), and
// the default number of worker threads. Server settings proper are parsed in server/config.ts.

import { availableParallelism } from "node:os";
import { resolve } from "node:path";

/** The checkout: migrations, shipped run logs and the Python package are found from it. */
export const REPO_ROOT = resolve(import.meta.dirname, "..");

/** The Python package diffusable (PYTHONPATH for the trainers). */
export const TRAINING_SRC = resolve(REPO_ROOT, "src/training");

/** The interpreter that has torch and numpy: DIFFUSABLE_PYTHON, else Debian's /usr/bin/python3. */
export const PYTHON = process.env.DIFFUSABLE_PYTHON || "/usr/bin/python3";

/** Worker threads when nothing says otherwise: the cores this process may use. */
export function defaultThreads(): number {
  return availableParallelism();
}
