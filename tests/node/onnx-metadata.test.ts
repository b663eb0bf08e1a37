import assert from "node:assert/strict";
import { test } from "node:test";
import { parseOnnxMetadata } from "../../src/pipeline/onnx/onnx-metadata.ts";

// A minimal protobuf writer, enough to build ModelProto-shaped bytes by hand.
function varint(n: number): number[] {
  const out: number[] = [];
  let v = n;
  while (v >= 128) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}
const bytesOf = (s: string) => [...new TextEncoder().encode(s)];
const field = (n: number, wire: number) => varint(n * 8 + wire);
const len = (n: number, payload: number[]) => [
  ...field(n, 2),
  ...varint(payload.length),
  ...payload,
];
const entry = (key: string, value: string, extra: number[] = []) =>
  len(14, [...len(1, bytesOf(key)), ...extra, ...len(2, bytesOf(value))]);

test("reads metadata_props and skips every other field by wire type", () => {
  const config = JSON.stringify({ latent_channels: 8, name: "vidéo ✓" });
  // biome-ignore format: one protobuf field per line
  const model = new Uint8Array([
    ...field(1, 0), ...varint(8), // ir_version
    ...len(2, bytesOf("pytorch")), // producer_name
    ...entry("config", config),
    // graph: a nested message holding a field 14 that must not be taken for metadata
    ...len(7, [...entry("not", "metadata"), ...field(1, 0), ...varint(2 ** 40)]),
    ...field(30, 1), 1, 2, 3, 4, 5, 6, 7, 8, // fixed64
    ...field(31, 5), 1, 2, 3, 4, // fixed32
    ...field(5, 0), ...varint(2 ** 45 + 3), // model_version, a varint past 32 bits
    ...entry("variant", "se", [...field(3, 0), 1]), // an unknown field inside the entry
    ...entry("empty", ""),
    ...entry("variant", "baseline"), // a repeated key keeps the last value
  ]);
  assert.deepEqual(parseOnnxMetadata(model), {
    config,
    variant: "baseline",
    empty: "",
  });
});

test("a model without metadata gives an empty object; __proto__ is a plain key", () => {
  assert.deepEqual(parseOnnxMetadata(new Uint8Array([...field(1, 0), 8])), {});
  const meta = parseOnnxMetadata(new Uint8Array(entry("__proto__", "x")));
  assert.equal(Object.getOwnPropertyDescriptor(meta, "__proto__")?.value, "x");
});

test("truncated or malformed bytes give a clear error", () => {
  const good = entry("config", "{}");
  assert.throws(() => parseOnnxMetadata(new Uint8Array(good.slice(0, -1))), /truncated/);
  assert.throws(() => parseOnnxMetadata(new Uint8Array([...field(9, 3)])), /wire type 3/);
  assert.throws(() => parseOnnxMetadata(new Uint8Array([0x80])), /truncated varint/);
});
