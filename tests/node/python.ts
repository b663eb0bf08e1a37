// Run the Debian Python that has torch and numpy (/usr/bin/python3, not the first python3 on PATH).

import { spawnSync } from "node:child_process";

import { PYTHON, REPO_ROOT, TRAINING_SRC } from "../../src/env.ts";

export { PYTHON, REPO_ROOT };

/** Runs python with these arguments from the repo root, PYTHONPATH=src/training; returns stdout. */
export function runPython(args: readonly string[], timeoutMs = 120_000): string {
  const result = spawnSync(PYTHON, args, {
    cwd: REPO_ROOT,
    encoding: "utf8",
    timeout: timeoutMs,
    env: { ...process.env, PYTHONPATH: TRAINING_SRC },
  });
  if (result.error) throw new Error(`${PYTHON} ${args.join(" ")}: ${result.error.message}`);
  if (result.status !== 0) {
    throw new Error(
      `${PYTHON} ${args.join(" ")} exited ${result.status ?? result.signal}\n${result.stderr}`,
    );
  }
  return result.stdout;
}
