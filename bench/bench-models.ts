// The models folder a benchmark runs on: --models / $DIFFUSABLE_MODELS_DIR or models/ when it
// holds a bundle with the file the benchmark needs (the one with the most model bytes, graphs
// and their shared weights files: the shipped configs, not a test-sized one), else the tiny fixture bundle made by our own code in a
// scratch folder.

import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { PYTHON, REPO_ROOT, TRAINING_SRC } from "../src/env.ts";

const onnxBytes = (bundle: string) =>
  readdirSync(bundle)
    .filter((f) => f.endsWith(".onnx") || f.endsWith(".weights"))
    .reduce((n, f) => n + statSync(join(bundle, f)).size, 0);

export function benchModels(
  work: string,
  needs: string,
  model?: string,
  modelsDir?: string,
): { dir: string; model: string } {
  const candidates = modelsDir
    ? [resolve(modelsDir)]
    : [process.env.DIFFUSABLE_MODELS_DIR, join(REPO_ROOT, "models")].filter(Boolean);
  for (const dir of candidates as string[]) {
    const bundles = existsSync(dir)
      ? readdirSync(dir)
          .filter((d) => existsSync(join(dir, d, needs)))
          .map((d) => ({ d, bytes: onnxBytes(join(dir, d)) }))
          .sort((a, b) => b.bytes - a.bytes || a.d.localeCompare(b.d))
      : [];
    if (bundles[0]) return { dir, model: model ?? bundles[0].d };
  }
  const out = join(work, "fixture");
  const r = spawnSync(PYTHON, ["-m", "diffusable.export.fixtures", "--out", out], {
    cwd: REPO_ROOT,
    env: { ...process.env, PYTHONPATH: TRAINING_SRC },
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`fixtures failed: ${r.stderr}`);
  mkdirSync(join(work, "models"));
  cpSync(join(out, "bundle"), join(work, "models", "tiny-fixture"), { recursive: true });
  return { dir: join(work, "models"), model: "tiny-fixture" };
}
