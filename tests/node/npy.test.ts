import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  encodeNpy,
  type NpyArray,
  parseNpy,
  readNpy,
  writeNpy,
} from "../../src/pipeline/media/npy-file.ts";
import { toHalfBits } from "../../src/pipeline/onnx/float16.ts";
import { runPython } from "./python.ts";

// Arrays written by numpy; the TypeScript side recomputes the same formulas to compare.
const WRITE_WITH_NUMPY = `
import sys, numpy as np
d = sys.argv[1]
np.save(f"{d}/f4.npy", (np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 11.5) / 4)
np.save(f"{d}/i8.npy", np.array([-(2**62), -1, 0, 1, 2**62 + 3], dtype=np.int64))
np.save(f"{d}/u1.npy", np.arange(256, dtype=np.uint8).reshape(16, 16))
special = [0.0, -0.0, 1.0, -2.5, 65504, 65519, 65520, 1e5, -1e5, np.inf, -np.inf, 1e-8,
           2**-24, 2**-25, 3 * 2**-25, 2**-14, 6.1e-5, 1 + 2**-11, 1 + 3 * 2**-11, 0.1]
rng = np.random.default_rng(0)
x = np.concatenate([rng.standard_normal(2000) * 10.0 ** rng.integers(-6, 5, 2000), special])
x = x.astype(np.float32)
np.save(f"{d}/f16_source.npy", x)
np.save(f"{d}/f2.npy", x.astype(np.float16))
np.save(f"{d}/f2_as_f4.npy", x.astype(np.float16).astype(np.float32))
with open(f"{d}/v2.npy", "wb") as f:
    np.lib.format.write_array(f, np.arange(6, dtype=np.float32).reshape(3, 2), version=(2, 0))
np.save(f"{d}/scalar.npy", np.float32(3.5))
np.save(f"{d}/empty.npy", np.zeros((0, 3), np.float32))
np.save(f"{d}/fortran.npy", np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
np.save(f"{d}/f8.npy", np.zeros(3))
np.save(f"{d}/big_endian.npy", np.zeros(3, ">f4"))
`;

const READ_WITH_NUMPY = `
import sys, json, numpy as np
out = {}
for name in sys.argv[2:]:
    a = np.load(f"{sys.argv[1]}/{name}.npy")
    out[name] = {"dtype": str(a.dtype), "shape": list(a.shape), "fortran": bool(np.isfortran(a)),
                 "values": [str(v) if a.dtype == np.int64 else float(v) for v in a.ravel()]}
print(json.dumps(out))
`;

const values = (a: NpyArray) => Array.from(a.data as ArrayLike<number | bigint>);

let dir = "";
before(() => {
  dir = mkdtempSync(join(tmpdir(), "npy-test-"));
  runPython(["-c", WRITE_WITH_NUMPY, dir]);
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe("readNpy: files written by numpy", () => {
  test("float32, C order, v1 header", async () => {
    const a = await readNpy(join(dir, "f4.npy"));
    assert.equal(a.dtype, "float32");
    assert.deepEqual(a.shape, [2, 3, 4]);
    assert.deepEqual(
      Array.from(a.data),
      Array.from({ length: 24 }, (_, i) => (i - 11.5) / 4),
    );
  });

  test("int64 as BigInt64Array", async () => {
    const a = await readNpy(join(dir, "i8.npy"));
    assert.equal(a.dtype, "int64");
    assert.ok(a.data instanceof BigInt64Array);
    assert.deepEqual(Array.from(a.data), [-(2n ** 62n), -1n, 0n, 1n, 2n ** 62n + 3n]);
  });

  test("uint8", async () => {
    const a = await readNpy(join(dir, "u1.npy"));
    assert.equal(a.dtype, "uint8");
    assert.deepEqual(a.shape, [16, 16]);
    assert.deepEqual(
      Array.from(a.data),
      Array.from({ length: 256 }, (_, i) => i),
    );
  });

  test("float16 decodes to the same float32 values numpy gives", async () => {
    const a = await readNpy(join(dir, "f2.npy"));
    const expected = await readNpy(join(dir, "f2_as_f4.npy"));
    assert.equal(a.dtype, "float16");
    assert.ok(a.data instanceof Float32Array);
    assert.deepEqual(a.data, expected.data);
  });

  test("float32 -> float16 rounding matches numpy bit for bit", async () => {
    const source = await readNpy(join(dir, "f16_source.npy"));
    const raw = readFileSync(join(dir, "f2.npy"));
    const numpyBits = new Uint16Array(
      raw.buffer.slice(
        raw.byteOffset + raw.length - source.data.length * 2,
        raw.byteOffset + raw.length,
      ),
    );
    const ours = Array.from(source.data as Float32Array, (v) => toHalfBits(v));
    assert.deepEqual(ours, Array.from(numpyBits));
    assert.equal(toHalfBits(Number.NaN) & 0x7c00, 0x7c00);
    assert.notEqual(toHalfBits(Number.NaN) & 0x3ff, 0);
  });

  test("version 2 header, scalar and empty arrays", async () => {
    const v2 = await readNpy(join(dir, "v2.npy"));
    assert.deepEqual(v2.shape, [3, 2]);
    assert.deepEqual(values(v2), [0, 1, 2, 3, 4, 5]);
    const scalar = await readNpy(join(dir, "scalar.npy"));
    assert.deepEqual(scalar.shape, []);
    assert.deepEqual(values(scalar), [3.5]);
    const empty = await readNpy(join(dir, "empty.npy"));
    assert.deepEqual(empty.shape, [0, 3]);
    assert.equal(empty.data.length, 0);
  });

  test("clear errors for fortran order and unsupported dtypes", async () => {
    await assert.rejects(readNpy(join(dir, "fortran.npy")), /fortran_order.*fortran\.npy/);
    await assert.rejects(readNpy(join(dir, "f8.npy")), /unsupported dtype '<f8'/);
    await assert.rejects(readNpy(join(dir, "big_endian.npy")), /unsupported dtype '>f4'/);
    assert.throws(() => parseNpy(new Uint8Array([1, 2, 3])), /bad magic/);
    const full = readFileSync(join(dir, "f4.npy"));
    const truncated = full.subarray(0, full.length - 60);
    assert.throws(() => parseNpy(truncated), /needs 96 data bytes, file has 36/);
  });
});

describe("writeNpy", () => {
  const arrays: Record<string, NpyArray> = {
    w_f4: {
      dtype: "float32",
      shape: [2, 2, 3],
      data: Float32Array.from({ length: 12 }, (_, i) => i / 8 - 1),
    },
    w_f2: { dtype: "float16", shape: [4], data: Float32Array.from([0.5, -2, 65504, 1e-7]) },
    w_i8: { dtype: "int64", shape: [3], data: BigInt64Array.from([-5n, 0n, 2n ** 60n]) },
    w_u1: { dtype: "uint8", shape: [1, 3], data: Uint8Array.from([0, 128, 255]) },
    w_scalar: { dtype: "float32", shape: [], data: Float32Array.from([7]) },
  };

  test("numpy reads what we write", async () => {
    for (const [name, array] of Object.entries(arrays))
      await writeNpy(join(dir, `${name}.npy`), array);
    const loaded = JSON.parse(runPython(["-c", READ_WITH_NUMPY, dir, ...Object.keys(arrays)]));
    const numpyDtype = { float32: "float32", float16: "float16", int64: "int64", uint8: "uint8" };
    for (const [name, array] of Object.entries(arrays)) {
      assert.equal(loaded[name].dtype, numpyDtype[array.dtype], name);
      assert.deepEqual(loaded[name].shape, array.shape, name);
      assert.equal(loaded[name].fortran, false, name);
      const expected =
        array.dtype === "int64"
          ? Array.from(array.data, String)
          : array.dtype === "float16"
            ? [0.5, -2, 65504, 1.1920928955078125e-7]
            : Array.from(array.data as Float32Array | Uint8Array);
      assert.deepEqual(loaded[name].values, expected, name);
    }
  });

  test("round trip keeps dtype, shape and values; headers are 64-byte aligned", () => {
    for (const array of Object.values(arrays)) {
      const bytes = encodeNpy(array);
      const headerLength = new DataView(bytes.buffer).getUint16(8, true);
      assert.equal((10 + headerLength) % 64, 0);
      const back = parseNpy(bytes);
      assert.equal(back.dtype, array.dtype);
      assert.deepEqual(back.shape, array.shape);
      const expected = array.dtype === "float16" ? parseNpy(encodeNpy(back)).data : array.data;
      assert.deepEqual(back.data, expected);
    }
  });

  test("rejects data that does not fit the shape", () => {
    assert.throws(
      () => encodeNpy({ dtype: "float32", shape: [2, 3], data: new Float32Array(5) }),
      /shape \[2,3\] has 6 elements, data has 5/,
    );
  });
});
