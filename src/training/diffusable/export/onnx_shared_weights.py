"""Several ONNX graphs of one model, one copy of its weights: ONNX external data.

The autoencoder ships three encoder graphs (clip encoder, streaming init, streaming step) that
compute with the same parameters; stored inside each graph, the encoder's weights took three
times their size in a bundle, and the bundle budget (25 MB) is what limits the denoiser's size.
`share_weights` moves every initializer of at least `min_bytes` out of the graphs into one
weights file beside them, each distinct tensor once (the same bytes, type and shape are stored
once however many graphs or names use them), and points the graphs at it through the standard
TensorProto fields (`external_data` location / offset / length, `data_location` EXTERNAL), which
onnxruntime resolves relative to the graph's own folder. The graphs compute exactly as before:
only where their bytes live changes.

Python has no onnx package here, so this rewrites the protobuf wire format itself (with
onnx_weights' reader): ModelProto.graph -> GraphProto.initializer -> TensorProto.

    PYTHONPATH=src/training /usr/bin/python3 -m diffusable.export.onnx_shared_weights \\
        encoder.weights encoder.onnx encoder_init.onnx encoder_step.onnx
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from .onnx_export import _length_delimited, _varint
from .onnx_weights import _GRAPH_INIT, _MODEL_GRAPH, _T_DIMS, _T_EXTERNAL, _T_RAW, _T_TYPE, _fields

# TensorProto.data_location (external_data: repeated StringStringEntryProto{key=1, value=2})
_T_LOCATION = 14
_EXTERNAL = 1
# Tensors start on 64-byte boundaries (what onnx's own external-data writer aligns small ones to)
ALIGN = 64


def _record(field: int, wire: int, value) -> bytes:
    """One field of a message, encoded again exactly as _fields read it."""
    key = _varint(field << 3 | wire)
    if wire == 0:
        return key + _varint(value)
    if wire == 2:
        return key + _varint(len(value)) + bytes(value)
    return key + bytes(value)  # fixed 32/64-bit


class _WeightsFile:
    """The shared file being written: each distinct tensor's bytes once, aligned."""

    def __init__(self, path: Path):
        self.path = path
        self.data = bytearray()
        self.where: Dict[str, Tuple[int, int]] = {}

    def place(self, raw: bytes, dtype: int, dims: bytes) -> Tuple[int, int]:
        key = hashlib.sha256(bytes([dtype]) + dims + b"\0" + raw).hexdigest()
        if key not in self.where:
            self.data += b"\0" * (-len(self.data) % ALIGN)
            self.where[key] = (len(self.data), len(raw))
            self.data += raw
        return self.where[key]


def _tensor_external(tensor: memoryview, out: _WeightsFile, min_bytes: int) -> bytes:
    fields = list(_fields(tensor))
    raw = next((bytes(v) for f, _, v in fields if f == _T_RAW), None)
    if raw is None or len(raw) < min_bytes:
        return bytes(tensor)
    if any(f in (_T_EXTERNAL, _T_LOCATION) for f, _, _ in fields):
        raise ValueError("a tensor is both inline and external")
    dtype = next(v for f, _, v in fields if f == _T_TYPE)
    dims = b"".join(_record(f, w, v) for f, w, v in fields if f == _T_DIMS)
    offset, length = out.place(raw, dtype, dims)
    kept = b"".join(_record(f, w, v) for f, w, v in fields if f != _T_RAW)
    entry = lambda k, v: _length_delimited(  # noqa: E731
        _T_EXTERNAL, _length_delimited(1, k.encode()) + _length_delimited(2, v.encode())
    )
    return (
        kept
        + entry("location", out.path.name)
        + entry("offset", str(offset))
        + entry("length", str(length))
        + _record(_T_LOCATION, 0, _EXTERNAL)
    )


def _model_external(model: memoryview, out: _WeightsFile, min_bytes: int) -> bytes:
    parts: List[bytes] = []
    for field, wire, value in _fields(model):
        if field != _MODEL_GRAPH:
            parts.append(_record(field, wire, value))
            continue
        graph = b"".join(
            (
                _length_delimited(_GRAPH_INIT, _tensor_external(v, out, min_bytes))
                if f == _GRAPH_INIT
                else _record(f, w, v)
            )
            for f, w, v in _fields(value)
        )
        parts.append(_length_delimited(_MODEL_GRAPH, graph))
    return b"".join(parts)


def share_weights(graphs: Sequence[Path], weights: Path, min_bytes: int = 1024) -> Dict:
    """Rewrite `graphs` (ONNX files in weights' folder) in place so that their initializers of
    at least `min_bytes` live once each in `weights`. Returns sizes before and after."""
    graphs = [Path(g) for g in graphs]
    for g in graphs:
        if g.parent.resolve() != Path(weights).parent.resolve():
            raise ValueError(f"{g.name} is not in the weights file's folder")
    out = _WeightsFile(Path(weights))
    before = sum(g.stat().st_size for g in graphs)
    rewritten = {}
    for g in graphs:
        try:
            rewritten[g] = _model_external(memoryview(g.read_bytes()), out, min_bytes)
        except (ValueError, IndexError, StopIteration) as err:
            raise ValueError(f"{g.name} is not an ONNX model ({err})") from None
    # Weights first: a graph is never left pointing at a file not yet written.
    Path(weights).write_bytes(bytes(out.data))
    for g, data in rewritten.items():
        g.write_bytes(data)
    after = sum(g.stat().st_size for g in graphs) + len(out.data)
    return {"bytes_before": before, "bytes_after": after, "tensors": len(out.where)}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        print(
            "usage: python3 -m diffusable.export.onnx_shared_weights "
            "WEIGHTS FILE.onnx [FILE.onnx ...]",
            file=sys.stderr,
        )
        return 2
    try:
        r = share_weights([Path(a) for a in argv[1:]], Path(argv[0]))
    except (OSError, ValueError) as err:
        print(f"onnx_shared_weights: {err}", file=sys.stderr)
        return 2
    print(f"{r['bytes_before']} -> {r['bytes_after']} bytes, {r['tensors']} tensors shared")
    return 0


if __name__ == "__main__":
    sys.exit(main())
