// NumPy .npy files: read and write C-order, little-endian float32, float16, int64 and uint8 arrays.
// Format: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
// float16 arrays are decoded to (and encoded from) a Float32Array; see float16.ts.

import { open, readFile } from "node:fs/promises";
import { halfBitsToFloat32, toHalfBits } from "../onnx/float16.ts";

export type NpyArray =
  | { dtype: "float32" | "float16"; shape: number[]; data: Float32Array }
  | { dtype: "int64"; shape: number[]; data: BigInt64Array }
  | { dtype: "uint8"; shape: number[]; data: Uint8Array };

export type NpyDtype = NpyArray["dtype"];

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"

const DESCR: Record<NpyDtype, { descr: string; itemSize: number }> = {
  float32: { descr: "<f4", itemSize: 4 },
  float16: { descr: "<f2", itemSize: 2 },
  int64: { descr: "<i8", itemSize: 8 },
  uint8: { descr: "|u1", itemSize: 1 },
};

const FROM_DESCR: Record<string, NpyDtype> = {
  "<f4": "float32",
  "<f2": "float16",
  "<i8": "int64",
  "|u1": "uint8",
  "<u1": "uint8",
};

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error("npy-file.ts assumes a little-endian host");
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

interface Header {
  descr: string;
  fortranOrder: boolean;
  shape: number[];
}

function parseHeader(text: string): Header {
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(text)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(text)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(text)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new Error(`npy: cannot parse header ${JSON.stringify(text.trim())}`);
  }
  const shape = shapeText
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => {
      const n = Number(s.replace(/L$/, ""));
      if (!Number.isInteger(n) || n < 0) throw new Error(`npy: bad shape (${shapeText})`);
      return n;
    });
  return { descr, fortranOrder: fortran === "True", shape };
}

/** numpy's name of a dtype descr ("<f8" -> "float64"), or the descr itself. */
export function numpyDtypeName(descr: string): string {
  const m = /^[<>|=]?([fiub])(\d+)$/.exec(descr);
  if (!m) return descr;
  const bytes = Number(m[2]);
  const kind = { f: "float", i: "int", u: "uint", b: "bool" }[m[1] as "f" | "i" | "u" | "b"];
  return kind === "bool" ? "bool" : `${kind}${bytes * 8}`;
}

/** A .npy file whose dtype this reader does not read; `dtype` is numpy's name for it. */
export class NpyDtypeError extends Error {
  override name = "NpyDtypeError";
  readonly dtype: string;
  constructor(
    readonly descr: string,
    supported: string[],
  ) {
    super(`npy: unsupported dtype '${descr}' (supported: ${supported.join(", ")})`);
    this.dtype = numpyDtypeName(descr);
  }
}

/** Parse the bytes of a .npy file (format version 1, 2 or 3). */
export function parseNpy(bytes: Uint8Array): NpyArray {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new Error("npy: not a .npy file (bad magic)");
  }
  const major = bytes[6] as number;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerStart: number;
  let headerLength: number;
  if (major === 1) {
    headerStart = 10;
    headerLength = view.getUint16(8, true);
  } else if (major === 2 || major === 3) {
    headerStart = 12;
    headerLength = view.getUint32(8, true);
  } else {
    throw new Error(`npy: unsupported format version ${major}.${bytes[7]}`);
  }
  const dataStart = headerStart + headerLength;
  if (dataStart > bytes.length) throw new Error("npy: truncated header");
  const header = parseHeader(new TextDecoder().decode(bytes.subarray(headerStart, dataStart)));
  const dtype = FROM_DESCR[header.descr];
  if (dtype === undefined) {
    throw new NpyDtypeError(header.descr, Object.keys(FROM_DESCR));
  }
  const count = elementCount(header.shape);
  if (header.fortranOrder) {
    throw new Error("npy: fortran_order arrays are not supported; save with np.ascontiguousarray");
  }
  const byteLength = count * DESCR[dtype].itemSize;
  if (bytes.length - dataStart !== byteLength) {
    throw new Error(
      `npy: shape (${header.shape.join(",")}) of ${header.descr} needs ${byteLength} data bytes, file has ${bytes.length - dataStart}`,
    );
  }
  // Copy: the data offset in a Node Buffer's pool is not necessarily aligned for the typed array.
  const raw = bytes.buffer.slice(bytes.byteOffset + dataStart, bytes.byteOffset + bytes.length);
  const shape = header.shape;
  switch (dtype) {
    case "float32":
      return { dtype, shape, data: new Float32Array(raw) };
    case "float16":
      return { dtype, shape, data: halfBitsToFloat32(new Uint16Array(raw)) };
    case "int64":
      return { dtype, shape, data: new BigInt64Array(raw) };
    case "uint8":
      return { dtype, shape, data: new Uint8Array(raw) };
  }
}

function encodeHeader(dtype: NpyDtype, shape: readonly number[]): Uint8Array {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
  const dict = `{'descr': '${DESCR[dtype].descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // Version 1 has a 2-byte header length; the whole preamble is padded to a multiple of 64.
  const v1Total = Math.ceil((10 + dict.length + 1) / 64) * 64;
  const version = v1Total - 10 <= 0xffff ? 1 : 2;
  const prefix = version === 1 ? 10 : 12;
  const total = Math.ceil((prefix + dict.length + 1) / 64) * 64;
  const headerText = `${dict}${" ".repeat(total - prefix - dict.length - 1)}\n`;
  const out = new Uint8Array(total);
  out.set(MAGIC, 0);
  out[6] = version;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (version === 1) view.setUint16(8, headerText.length, true);
  else view.setUint32(8, headerText.length, true);
  out.set(new TextEncoder().encode(headerText), prefix);
  return out;
}

/**
 * The bytes of a .npy file (version 1 unless the header needs version 2) as its header and its
 * data: the data is a view of the array's own memory, except float16, packed into a new buffer.
 * Written one after the other they make the file without a copy of the whole.
 */
export function npyParts(array: NpyArray): [Uint8Array, Uint8Array] {
  const count = elementCount(array.shape);
  if (array.shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new Error(`npy: bad shape [${array.shape.join(",")}]`);
  }
  if (array.data.length !== count) {
    throw new Error(
      `npy: shape [${array.shape.join(",")}] has ${count} elements, data has ${array.data.length}`,
    );
  }
  if (!(array.dtype in DESCR)) throw new Error(`npy: unsupported dtype ${String(array.dtype)}`);
  const header = encodeHeader(array.dtype, array.shape);
  if (array.dtype === "float16") {
    const halves = new Uint16Array(count);
    for (let i = 0; i < count; i++) halves[i] = toHalfBits(array.data[i] as number);
    return [header, new Uint8Array(halves.buffer)];
  }
  const body = array.data;
  return [header, new Uint8Array(body.buffer, body.byteOffset, body.byteLength)];
}

/** Encode an array as the bytes of a .npy file, in one buffer. */
export function encodeNpy(array: NpyArray): Uint8Array {
  const [header, body] = npyParts(array);
  const out = new Uint8Array(header.length + body.length);
  out.set(header, 0);
  out.set(body, header.length);
  return out;
}

export async function readNpy(path: string): Promise<NpyArray> {
  try {
    return parseNpy(await readFile(path));
  } catch (err) {
    if (err instanceof Error && err.message.startsWith("npy:")) {
      throw new Error(`${err.message} (${path})`, { cause: err });
    }
    throw err;
  }
}

export async function writeNpy(path: string, array: NpyArray): Promise<void> {
  const handle = await open(path, "w");
  try {
    for (const part of npyParts(array)) await handle.writeFile(part);
  } finally {
    await handle.close();
  }
}
