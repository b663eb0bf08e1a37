"""Read the weights back out of an exported ONNX file: the initializers of its graph, by name.

Python has no onnx package here, so this reads the protobuf wire format itself (the few fields
of ModelProto -> GraphProto -> TensorProto it needs). It is how a shipped bundle's denoiser,
whose training checkpoint was never kept, becomes a checkpoint again: `export_onnx` stores every
parameter under its state_dict name with a suffix (`_fp16`, or `_int8` + `_scale`), and
`state_from_initializers` undoes that: exactly the weights the exported graph computes with.
Only fp16- and int8-stored exports keep every weight under its name: an fp32 export is constant
folded (a linear layer's weight becomes its transpose under a generated name).

    PYTHONPATH=src/training /usr/bin/python3 -m diffusable.export.onnx_weights \\
        models/small-se/denoiser.onnx
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, Iterator, Tuple

import numpy as np
import torch

# TensorProto.DataType -> numpy dtype (the ones our exports write)
_DTYPES = {1: np.float32, 3: np.int8, 6: np.int32, 7: np.int64, 10: np.float16, 11: np.float64}
# ModelProto.graph, GraphProto.initializer, TensorProto.{dims, data_type, float_data, int32_data,
# int64_data, name, raw_data}
_MODEL_GRAPH, _GRAPH_INIT = 7, 5
_T_DIMS, _T_TYPE, _T_FLOAT, _T_INT32, _T_INT64, _T_NAME, _T_RAW = 1, 2, 4, 5, 7, 8, 9
_T_EXTERNAL = 13  # TensorProto.external_data: {location, offset, length} (onnx_shared_weights)


def _varint(buf: memoryview, pos: int) -> Tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: memoryview) -> Iterator[Tuple[int, int, object]]:
    """(field number, wire type, value) of one message: an int for varints, a memoryview for
    length-delimited fields, raw bytes for fixed-width ones."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + n], pos + n
        elif wire == 1:
            value, pos = bytes(buf[pos : pos + 8]), pos + 8
        elif wire == 5:
            value, pos = bytes(buf[pos : pos + 4]), pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > len(buf):
            raise ValueError("the data is cut short")
        yield field, wire, value


def _packed_varints(value) -> list:
    buf, pos, out = value, 0, []
    while pos < len(buf):
        v, pos = _varint(buf, pos)
        out.append(v)
    return out


def _external_bytes(entries: Dict[str, str], folder: Path) -> bytes:
    """The bytes an external-data tensor points at: a file in the graph's own folder."""
    location = entries.get("location", "")
    if not location or Path(location).name != location:
        raise ValueError(f"external data location {location!r} is not a file beside the graph")
    offset, length = int(entries.get("offset", 0)), entries.get("length")
    with (folder / location).open("rb") as f:
        f.seek(offset)
        data = f.read(-1 if length is None else int(length))
    if length is not None and len(data) != int(length):
        raise ValueError(f"{location} is shorter than a tensor it holds")
    return data


def _tensor(buf: memoryview, folder: Path) -> Tuple[str, np.ndarray]:
    dims, dtype, name, raw = [], None, "", None
    floats, ints, external = [], [], {}
    for field, wire, value in _fields(buf):
        if field == _T_DIMS:
            dims += _packed_varints(value) if wire == 2 else [value]
        elif field == _T_TYPE:
            dtype = value
        elif field == _T_NAME:
            name = bytes(value).decode()
        elif field == _T_RAW:
            raw = bytes(value)
        elif field == _T_FLOAT:
            floats.append(np.frombuffer(bytes(value), "<f4") if wire == 2 else value)
        elif field in (_T_INT32, _T_INT64):
            ints += _packed_varints(value) if wire == 2 else [value]
        elif field == _T_EXTERNAL:
            entry = {k: bytes(v).decode() for k, _, v in _fields(value)}
            external[entry.get(1, "")] = entry.get(2, "")
    if external:
        raw = _external_bytes(external, folder)
    if dtype not in _DTYPES:
        raise ValueError(f"initializer {name!r} has an unsupported data type {dtype}")
    np_dtype = np.dtype(_DTYPES[dtype]).newbyteorder("<")
    if raw is not None:
        array = np.frombuffer(raw, np_dtype).copy()
    elif floats:
        array = np.concatenate([np.atleast_1d(f) for f in floats]).astype(np_dtype)
    else:
        # int32_data also carries int8 and float16 values (float16 as their bit patterns)
        words = np.array(ints, dtype=np.uint64)
        array = (
            words.astype(np.uint16).view(np.float16)
            if dtype == 10
            else words.astype(np.int64).astype(np_dtype)
        )
    return name, array.reshape(dims)


def read_initializers(path) -> Dict[str, np.ndarray]:
    """Every initializer of an ONNX file's main graph, by name (external data read from the
    weights file beside it)."""
    data = memoryview(Path(path).read_bytes())
    out: Dict[str, np.ndarray] = {}
    try:
        for field, _, graph in _fields(data):
            if field != _MODEL_GRAPH:
                continue
            for gfield, _, value in _fields(graph):
                if gfield == _GRAPH_INIT:
                    name, array = _tensor(value, Path(path).parent)
                    out[name] = array
    except (ValueError, IndexError, UnicodeDecodeError) as err:  # not protobuf, or cut short
        raise ValueError(f"{Path(path).name} is not an ONNX model ({err})") from None
    if not out:
        raise ValueError(f"{Path(path).name} has no initializers (not an ONNX model?)")
    return out


def state_from_initializers(inits: Dict[str, np.ndarray], keys) -> Dict[str, torch.Tensor]:
    """The float32 state_dict entries `keys` as export_onnx stored them: `<key>` (fp32),
    `<key>_fp16`, or `<key>_int8` times `<key>_scale` (onnx_export._half_storage_copy)."""
    state, missing = {}, []
    for key in keys:
        if key in inits:
            value = inits[key].astype(np.float32)
        elif key + "_fp16" in inits:
            value = inits[key + "_fp16"].astype(np.float32)
        elif key + "_int8" in inits and key + "_scale" in inits:
            value = inits[key + "_int8"].astype(np.float32) * inits[key + "_scale"].astype(
                np.float32
            )
        else:
            missing.append(key)
            continue
        state[key] = torch.from_numpy(np.ascontiguousarray(value))
    if missing:
        raise ValueError(
            f"the ONNX file lacks {len(missing)} weights of the model, e.g. {missing[0]!r}"
        )
    return state


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python3 -m diffusable.export.onnx_weights FILE.onnx", file=sys.stderr)
        return 2
    try:
        inits = read_initializers(argv[0])
    except (OSError, ValueError) as err:
        print(f"onnx_weights: {err}", file=sys.stderr)
        return 2
    for name, array in inits.items():
        print(f"{name}\t{array.dtype}\t{tuple(array.shape)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
