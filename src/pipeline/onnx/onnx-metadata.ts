// The metadata_props of an ONNX model, read straight from its protobuf bytes, because
// onnxruntime-node does not expose custom model metadata.
// ModelProto field 14 = repeated StringStringEntryProto { string key = 1; string value = 2; }.
// Every other field is skipped by its wire type; nested messages (the graph) are never decoded.

import { readFile } from "node:fs/promises";

const METADATA_PROPS = 14;

class Reader {
  pos: number;
  constructor(
    readonly bytes: Uint8Array,
    start = 0,
    readonly end = bytes.length,
  ) {
    this.pos = start;
  }

  done(): boolean {
    return this.pos >= this.end;
  }

  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new Error("onnx: truncated varint");
      const b = this.bytes[this.pos++] as number;
      value += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return value;
      scale *= 128;
    }
    throw new Error("onnx: varint too long");
  }

  /** Returns [start, end) of a length-delimited field's payload and moves past it. */
  lengthDelimited(): [number, number] {
    const length = this.varint();
    const start = this.pos;
    if (start + length > this.end) throw new Error("onnx: truncated length-delimited field");
    this.pos = start + length;
    return [start, this.pos];
  }

  skip(wireType: number): void {
    switch (wireType) {
      case 0:
        this.varint();
        return;
      case 1:
        this.advance(8);
        return;
      case 2:
        this.lengthDelimited();
        return;
      case 5:
        this.advance(4);
        return;
      default:
        throw new Error(`onnx: unsupported protobuf wire type ${wireType} at byte ${this.pos}`);
    }
  }

  private advance(n: number): void {
    if (this.pos + n > this.end) throw new Error("onnx: truncated fixed-width field");
    this.pos += n;
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function parseEntry(bytes: Uint8Array, start: number, end: number): [string, string] {
  const r = new Reader(bytes, start, end);
  let key = "";
  let value = "";
  while (!r.done()) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    const wireType = tag % 8;
    if ((field === 1 || field === 2) && wireType === 2) {
      const [s, e] = r.lengthDelimited();
      const text = utf8.decode(bytes.subarray(s, e));
      if (field === 1) key = text;
      else value = text;
    } else {
      r.skip(wireType);
    }
  }
  return [key, value];
}

/** metadata_props of a serialized ONNX ModelProto, key -> value (a repeated key keeps the last). */
export function parseOnnxMetadata(bytes: Uint8Array): Record<string, string> {
  const out = new Map<string, string>();
  const r = new Reader(bytes);
  while (!r.done()) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (field === METADATA_PROPS && wireType === 2) {
      const [s, e] = r.lengthDelimited();
      const [key, value] = parseEntry(bytes, s, e);
      out.set(key, value);
    } else {
      r.skip(wireType);
    }
  }
  return Object.fromEntries(out);
}

export async function readOnnxMetadata(path: string): Promise<Record<string, string>> {
  const bytes = await readFile(path);
  try {
    return parseOnnxMetadata(bytes);
  } catch (err) {
    throw new Error(`${err instanceof Error ? err.message : String(err)} (${path})`, {
      cause: err,
    });
  }
}
