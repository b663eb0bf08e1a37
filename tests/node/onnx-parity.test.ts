// Parity between PyTorch and onnxruntime-node: diffusable.export.fixtures exports models and saves inputs
// and PyTorch's outputs; every case runs through src/pipeline/onnx/onnx-session.ts and must agree.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { type NpyArray, readNpy } from "../../src/pipeline/media/npy-file.ts";
import { readOnnxMetadata } from "../../src/pipeline/onnx/onnx-metadata.ts";
import { openSession, runSession, type Session } from "../../src/pipeline/onnx/onnx-session.ts";
import { runPython } from "./python.ts";

interface ParityCase {
  name: string;
  model: string;
  inputs: Record<string, string>;
  outputs: Record<string, string>;
  tolerance: number;
}
interface CaseFile {
  cases: ParityCase[];
  metadata: Record<string, Record<string, string>>;
}

const dir = mkdtempSync(join(tmpdir(), "onnx-parity-"));
const sessions = new Map<string, Session>();
after(async () => {
  for (const session of sessions.values()) await session.release();
  rmSync(dir, { recursive: true, force: true });
});

/** Largest |a - b|; NaN in either (unless both) counts as infinite. */
function maxAbsError(
  actual: ArrayLike<number | bigint>,
  expected: ArrayLike<number | bigint>,
): number {
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = Number(actual[i]);
    const b = Number(expected[i]);
    if (Number.isNaN(a) && Number.isNaN(b)) continue;
    const err = Number.isNaN(a) || Number.isNaN(b) ? Number.POSITIVE_INFINITY : Math.abs(a - b);
    if (!(err <= worst)) worst = err;
  }
  return worst;
}

async function session(model: string): Promise<Session> {
  let s = sessions.get(model);
  if (s === undefined) {
    s = await openSession(join(dir, model));
    sessions.set(model, s);
  }
  return s;
}

const asFeed = (a: NpyArray) => ({ data: a.data, dims: a.shape, dtype: a.dtype });

test("PyTorch and onnxruntime-node agree on every fixture case", async (t) => {
  runPython(["-m", "diffusable.export.fixtures", "--out", dir], 600_000);
  const file: CaseFile = JSON.parse(readFileSync(join(dir, "cases.json"), "utf8"));
  assert.ok(Array.isArray(file.cases) && file.cases.length > 0, "cases.json lists no cases");

  for (const c of file.cases) {
    await t.test(`${c.name} (${c.model})`, async (t) => {
      assert.ok(c.tolerance > 0 && Object.keys(c.outputs).length > 0, `malformed case ${c.name}`);
      const feeds: Record<string, ReturnType<typeof asFeed>> = {};
      for (const [name, npy] of Object.entries(c.inputs))
        feeds[name] = asFeed(await readNpy(join(dir, npy)));
      const outputs = await runSession(await session(c.model), feeds);
      const errors: string[] = [];
      for (const [name, npy] of Object.entries(c.outputs)) {
        const expected = await readNpy(join(dir, npy));
        const actual = outputs[name];
        assert.ok(
          actual,
          `model has no output "${name}" (it has ${Object.keys(outputs).join(", ")})`,
        );
        assert.deepEqual(actual.dims, expected.shape, `dims of output "${name}"`);
        const err = maxAbsError(actual.data, expected.data);
        errors.push(`${name} ${err.toExponential(1)}`);
        assert.ok(
          err <= c.tolerance,
          `output "${name}": max abs error ${err} > tolerance ${c.tolerance}`,
        );
      }
      t.diagnostic(`max abs error: ${errors.join(", ")}`);
    });
  }

  const models = Object.entries(file.metadata ?? {});
  assert.ok(models.length > 0, "cases.json lists no model metadata");
  for (const [model, expected] of models) {
    await t.test(`metadata of ${model}`, async () => {
      const actual = await readOnnxMetadata(join(dir, model));
      for (const [key, value] of Object.entries(expected)) {
        assert.equal(actual[key], value, `metadata key "${key}" of ${model}`);
      }
    });
  }
});
