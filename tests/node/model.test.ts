import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { readOnnxMetadata } from "../../src/pipeline/onnx/onnx-metadata.ts";
import {
  checkFeeds,
  describeSession,
  openSession,
  runSession,
  type Session,
} from "../../src/pipeline/onnx/onnx-session.ts";
import { runPython } from "./python.ts";

// A tiny two-input, two-output model exported by torch, with metadata_props appended to the
// serialized ModelProto (protobuf messages concatenate, so no onnx package is needed).
const EXPORT = `
import sys, json, torch

class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(3, 2)

    def forward(self, x, label):
        return x * 2 + self.emb(label)[:, :, None], x.sum(dim=(1, 2))

torch.manual_seed(0)
m = M().eval()
x = torch.arange(12, dtype=torch.float32).reshape(2, 2, 3) / 4
label = torch.tensor([0, 2])
torch.onnx.export(m, (x, label), sys.argv[1], input_names=["x", "label"], output_names=["y", "s"],
                  dynamic_axes={"x": {0: "batch"}, "label": {0: "batch"}, "y": {0: "batch"},
                                "s": {0: "batch"}}, opset_version=17)

def varint(n):
    out = b""
    while n >= 128:
        out += bytes([n & 127 | 128])
        n >>= 7
    return out + bytes([n])

def ld(field, payload):
    return varint(field << 3 | 2) + varint(len(payload)) + payload

with open(sys.argv[1], "ab") as f:
    for k, v in {"config": json.dumps({"channels": 2}), "variant": "se"}.items():
        f.write(ld(14, ld(1, k.encode()) + ld(2, v.encode())))
with torch.no_grad():
    y, s = m(x, label)
print(json.dumps({"y": y.flatten().tolist(), "s": s.tolist()}))
`;

let dir = "";
let modelPath = "";
let expected: { y: number[]; s: number[] };
let session: Session;

const x = () => ({
  dtype: "float32" as const,
  dims: [2, 2, 3],
  data: Float32Array.from({ length: 12 }, (_, i) => i / 4),
});
const label = () => ({ dtype: "int64" as const, dims: [2], data: BigInt64Array.from([0n, 2n]) });

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "model-test-"));
  modelPath = join(dir, "tiny.onnx");
  expected = JSON.parse(runPython(["-c", EXPORT, modelPath]));
  session = await openSession(modelPath, { providers: ["cpu"] });
});
after(async () => {
  await session?.release();
  rmSync(dir, { recursive: true, force: true });
});

test("describeSession lists names, dtypes and dims", () => {
  assert.deepEqual(describeSession(session), {
    inputNames: ["x", "label"],
    outputNames: ["y", "s"],
    inputs: [
      { name: "x", dtype: "float32", dims: ["batch", 2, 3] },
      { name: "label", dtype: "int64", dims: ["batch"] },
    ],
    outputs: [
      { name: "y", dtype: "float32", dims: ["batch", 2, 3] },
      { name: "s", dtype: "float32", dims: ["batch"] },
    ],
  });
});

test("runSession matches PyTorch", async () => {
  const out = await runSession(session, { x: x(), label: label() });
  assert.deepEqual(Object.keys(out), ["y", "s"]);
  assert.deepEqual(out.y?.dims, [2, 2, 3]);
  assert.equal(out.y?.dtype, "float32");
  const close = (a: ArrayLike<number>, b: number[]) =>
    b.every((v, i) => Math.abs((a[i] as number) - v) <= 1e-5);
  assert.ok(close(out.y?.data as Float32Array, expected.y));
  assert.ok(close(out.s?.data as Float32Array, expected.s));
});

test("feeds are checked before running, naming expected and given inputs", async () => {
  const cases: [Parameters<typeof checkFeeds>[1], RegExp][] = [
    [{ x: x() }, /missing input "label"/],
    [{ x: x(), label: label(), t: x() }, /unexpected input "t"/],
    [
      { x: { ...x(), dtype: "float16" }, label: label() },
      /"x" has dtype float16, expected float32/,
    ],
    [{ x: { ...x(), dims: [2, 6] }, label: label() }, /"x" has rank 2, expected 3/],
    [{ x: { ...x(), dims: [4, 1, 3] }, label: label() }, /"x" has dim 1 = 1, expected 2/],
    [{ x: { ...x(), dims: [1, 2, 3] }, label: label() }, /\(6 elements\) but 12 values/],
    [
      { x: x(), label: { ...label(), data: new Int32Array(2) } },
      /"label" of dtype int64 holds a Int32Array/,
    ],
  ];
  for (const [feeds, message] of cases) {
    assert.throws(() => checkFeeds(session, feeds), message);
    await assert.rejects(runSession(session, feeds), message);
  }
  assert.throws(
    () => checkFeeds(session, { x: x() }),
    (err: Error) =>
      err.message.includes("expected: x float32 [batch,2,3], label int64 [batch]") &&
      err.message.includes("given:    x float32 [2,2,3] (Float32Array)"),
  );
});

test("readOnnxMetadata returns metadata_props", async () => {
  assert.deepEqual(await readOnnxMetadata(modelPath), {
    config: '{"channels": 2}',
    variant: "se",
  });
});

test("openSession names the path when the model cannot be opened", async () => {
  await assert.rejects(
    openSession(join(dir, "missing.onnx")),
    /cannot open ONNX model .*missing\.onnx/,
  );
});
