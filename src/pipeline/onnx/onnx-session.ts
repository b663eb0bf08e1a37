// The one module that talks to onnxruntime-node: open a session, describe it, run it with checked
// feeds, and read the model's metadata. float16 tensors are Float32Array on the JS side (float16.ts).

import { InferenceSession, Tensor } from "onnxruntime-node";
import { PipelineError } from "../pipeline-error.ts";
import { float32ToHalfBits, halfBitsToFloat32 } from "./float16.ts";
import { disableOrtTelemetry } from "./ort-env.ts";

disableOrtTelemetry(); // before any session of this thread (and of the workers it starts)

export type Session = InferenceSession;

const ARRAY_OF = {
  float32: Float32Array,
  float16: Float32Array,
  float64: Float64Array,
  int64: BigInt64Array,
  int32: Int32Array,
  int8: Int8Array,
  uint8: Uint8Array,
  bool: Uint8Array,
} as const;

export type DType = keyof typeof ARRAY_OF;
export type TensorData =
  | Float32Array
  | Float64Array
  | BigInt64Array
  | Int32Array
  | Int8Array
  | Uint8Array;

export interface TensorValue {
  data: TensorData;
  dims: readonly number[];
  dtype: DType;
}

export interface ValueInfo {
  name: string;
  /** Element type, or null for a non-tensor value. */
  dtype: string | null;
  /** Dimensions; strings are symbolic (e.g. "batch"); empty when the model does not say. */
  dims: ReadonlyArray<number | string>;
}

export interface SessionDescription {
  inputNames: string[];
  outputNames: string[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
}

export interface OpenSessionOptions {
  /** onnxruntime execution providers in order of preference; default ["cpu"]. */
  providers?: readonly string[];
  /** Threads inside one operator; default: onnxruntime's choice. */
  intraOpThreads?: number;
}

export async function openSession(
  path: string,
  options: OpenSessionOptions = {},
): Promise<Session> {
  try {
    return await InferenceSession.create(path, {
      executionProviders: [...(options.providers ?? ["cpu"])],
      graphOptimizationLevel: "all",
      ...(options.intraOpThreads ? { intraOpNumThreads: options.intraOpThreads } : {}),
    });
  } catch (err) {
    throw new Error(`cannot open ONNX model ${path}: ${(err as Error).message}`, { cause: err });
  }
}

function valueInfo(meta: InferenceSession.ValueMetadata): ValueInfo {
  return meta.isTensor
    ? { name: meta.name, dtype: meta.type, dims: [...meta.shape] }
    : { name: meta.name, dtype: null, dims: [] };
}

export function describeSession(session: Session): SessionDescription {
  return {
    inputNames: [...session.inputNames],
    outputNames: [...session.outputNames],
    inputs: session.inputMetadata.map(valueInfo),
    outputs: session.outputMetadata.map(valueInfo),
  };
}

const showInfo = (v: ValueInfo) => `${v.name} ${v.dtype ?? "non-tensor"} [${v.dims.join(",")}]`;
const showFeed = (name: string, f: TensorValue) =>
  `${name} ${f.dtype} [${f.dims.join(",")}] (${f.data.constructor.name})`;

/** Throws an Error naming the expected and the given inputs unless the feeds fit the session. */
export function checkFeeds(session: Session, feeds: Readonly<Record<string, TensorValue>>): void {
  const expected = describeSession(session).inputs;
  const problems: string[] = [];
  for (const info of expected) {
    const feed = feeds[info.name];
    if (feed === undefined) {
      problems.push(`missing input "${info.name}"`);
      continue;
    }
    if (info.dtype !== null && feed.dtype !== info.dtype) {
      problems.push(`input "${info.name}" has dtype ${feed.dtype}, expected ${info.dtype}`);
    }
    if (!(feed.dtype in ARRAY_OF) || !(feed.data instanceof ARRAY_OF[feed.dtype])) {
      problems.push(
        `input "${info.name}" of dtype ${feed.dtype} holds a ${feed.data.constructor.name}`,
      );
    }
    if (info.dims.length > 0 && feed.dims.length !== info.dims.length) {
      problems.push(
        `input "${info.name}" has rank ${feed.dims.length}, expected ${info.dims.length}`,
      );
    } else {
      info.dims.forEach((d, i) => {
        if (typeof d === "number" && feed.dims[i] !== d) {
          problems.push(`input "${info.name}" has dim ${i} = ${feed.dims[i]}, expected ${d}`);
        }
      });
    }
    const count = feed.dims.reduce((n, d) => n * d, 1);
    if (feed.data.length !== count) {
      problems.push(
        `input "${info.name}" has dims [${feed.dims.join(",")}] (${count} elements) but ${feed.data.length} values`,
      );
    }
  }
  const known = new Set(expected.map((v) => v.name));
  for (const name of Object.keys(feeds)) {
    if (!known.has(name)) problems.push(`unexpected input "${name}"`);
  }
  if (problems.length > 0) {
    const given = Object.entries(feeds).map(([name, f]) => showFeed(name, f));
    throw new PipelineError(
      "model_inputs",
      `model inputs do not match: ${problems.join("; ")}\n` +
        `  expected: ${expected.map(showInfo).join(", ")}\n` +
        `  given:    ${given.join(", ") || "(none)"}`,
      422,
    );
  }
}

function toOrt(value: TensorValue): Tensor {
  const dims = [...value.dims];
  if (value.dtype === "float16") {
    return new Tensor("float16", float32ToHalfBits(value.data as Float32Array), dims);
  }
  return new Tensor(value.dtype, value.data as Tensor.DataTypeMap[typeof value.dtype], dims);
}

function fromOrt(name: string, tensor: Tensor): TensorValue {
  const dims = [...tensor.dims];
  if (tensor.type === "float16") {
    return { dtype: "float16", dims, data: halfBitsToFloat32(tensor.data as Uint16Array) };
  }
  if (!(tensor.type in ARRAY_OF)) {
    throw new Error(`model output "${name}" has unsupported dtype ${tensor.type}`);
  }
  return { dtype: tensor.type as DType, dims, data: tensor.data as TensorData };
}

/** Checks the feeds (see checkFeeds), runs the model and returns every output. */
export async function runSession(
  session: Session,
  feeds: Readonly<Record<string, TensorValue>>,
): Promise<Record<string, TensorValue>> {
  checkFeeds(session, feeds);
  const ortFeeds: Record<string, Tensor> = {};
  for (const [name, value] of Object.entries(feeds)) ortFeeds[name] = toOrt(value);
  const results = await session.run(ortFeeds);
  const out: Record<string, TensorValue> = {};
  for (const name of session.outputNames) {
    const tensor = results[name];
    if (!(tensor instanceof Tensor)) throw new Error(`model output "${name}" is not a tensor`);
    out[name] = fromOrt(name, tensor);
  }
  return out;
}
