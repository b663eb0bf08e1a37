// The models folder a server benchmark serves: $DIFFUSABLE_MODELS_DIR or models/ when it holds a
// bundle with the file the benchmark needs, else the tiny fixture bundle made by our own code in
// a scratch folder.

import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { PYTHON, REPO_ROOT, TRAINING_SRC } from "../src/env.ts";

export function benchModels(
  work: string,
  needs: string,
  model?: string,
): { dir: string; model: string } {
  const candidates = [process.env.DIFFUSABLE_MODELS_DIR, join(REPO_ROOT, "models")].filter(Boolean);
  for (const dir of candidates as string[]) {
    const bundles = existsSync(dir)
      ? readdirSync(dir).filter((d) => existsSync(join(dir, d, needs)))
      : [];
    if (bundles.length > 0) return { dir, model: model ?? (bundles[0] as string) };
  }
  const out = join(work, "fixture");
  const r = spawnSync(PYTHON, ["-m", "diffusable.fixtures", "--out", out], {
    cwd: REPO_ROOT,
    env: { ...process.env, PYTHONPATH: TRAINING_SRC },
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`fixtures failed: ${r.stderr}`);
  mkdirSync(join(work, "models"));
  cpSync(join(out, "bundle"), join(work, "models", "tiny-fixture"), { recursive: true });
  return { dir: join(work, "models"), model: "tiny-fixture" };
}
