"""ONNX export helpers shared by every model: TorchScript exporter, opset 17, metadata, hashes.

The TorchScript exporter is used on torch 1.13 and 2.x alike (dynamo=False on 2.x) so that both
produce the same graphs. Python has no onnx package here, so metadata is added by appending
ModelProto field 14 (metadata_props: StringStringEntryProto{key=1, value=2}) to the serialized
model: protobuf parsers merge repeated fields that appear later in a message.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import inspect
import io
from pathlib import Path
from typing import Dict, List, Sequence

import torch

OPSET = 17


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _length_delimited(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def metadata_props(metadata: Dict[str, str]) -> bytes:
    """Serialized ModelProto.metadata_props entries for the given key/values."""
    out = b""
    for key, value in metadata.items():
        entry = _length_delimited(1, key.encode()) + _length_delimited(2, value.encode())
        out += _length_delimited(14, entry)
    return out


WEIGHT_STORAGE = ("fp32", "fp16", "int8")


def add_weights_flag(ap: argparse.ArgumentParser, default: str = "fp16") -> None:
    """--weights: how an export stores parameters (the graphs compute in fp32 either way)."""
    ap.add_argument(
        "--weights",
        choices=WEIGHT_STORAGE,
        default=default,
        help="parameter storage in the ONNX files (compute is fp32 either way)",
    )


def round_weights_fp16(module: torch.nn.Module) -> torch.nn.Module:
    """Round every floating parameter to the nearest fp16 value, in place.

    An fp16-stored export computes with exactly these weights, so a PyTorch reference that is
    compared against it (fixtures, parity tests) must be rounded first.
    """
    with torch.no_grad():
        for p in module.parameters():
            if p.is_floating_point():
                p.copy_(p.half().float())
    return module


def int8_codes(w: torch.Tensor):
    """Symmetric per-output-channel int8 codes of a weight (dim 0 = output channels) and their
    fp16 scales: w ~= codes * scale. Weights of one dimension (biases, norms) are not coded."""
    flat = w.detach().float().reshape(w.shape[0], -1)
    scale = (flat.abs().amax(dim=1) / 127.0).clamp_min(1e-12).half().float()  # fp16-exact
    codes = torch.round(flat / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return codes.reshape(w.shape), scale.half().reshape([-1] + [1] * (w.dim() - 1))


def round_weights_int8(module: torch.nn.Module) -> torch.nn.Module:
    """Give every parameter the value an int8-stored export computes with, in place: int8 codes
    times an fp16 scale per output channel for weights of 2+ dimensions, fp16 for the rest."""
    with torch.no_grad():
        for p in module.parameters():
            if not p.is_floating_point():
                continue
            if p.dim() >= 2:
                codes, scale = int8_codes(p)
                p.copy_(codes.float() * scale.float())
            else:
                p.copy_(p.half().float())
    return module


def _half_storage_copy(module: torch.nn.Module, int8: bool = False) -> torch.nn.Module:
    """A copy of module whose parameters are stored as fp16 initializers + Cast nodes in ONNX.

    This halves the file (and the bundle) while the graph still computes in fp32: onnxruntime
    folds the casts once when it loads the session. Each parameter becomes an fp16 buffer, and
    a forward pre-hook of its module sets the fp32 attribute from it, so tracing records the
    cast. Buffers that were fp32 already (e.g. fixed position tables) are left alone.
    """
    module = copy.deepcopy(module)

    def make_hook(names: List[str], coded: List[str]):
        def hook(sub: torch.nn.Module, _inputs) -> None:
            for name in names:
                setattr(sub, name, getattr(sub, f"{name}_fp16").float())
            for name in coded:
                codes, scale = getattr(sub, f"{name}_int8"), getattr(sub, f"{name}_scale")
                setattr(sub, name, codes.float() * scale.float())

        return hook

    for sub in list(module.modules()):
        names = [n for n, p in sub.named_parameters(recurse=False) if p.is_floating_point()]
        coded = [n for n in names if int8 and sub._parameters[n].dim() >= 2]
        names = [n for n in names if n not in coded]
        for name in names:
            p = sub._parameters.pop(name)
            sub.register_buffer(f"{name}_fp16", p.detach().half())
        for name in coded:
            codes, scale = int8_codes(sub._parameters.pop(name))
            sub.register_buffer(f"{name}_int8", codes)
            sub.register_buffer(f"{name}_scale", scale)
        if names or coded:
            sub.register_forward_pre_hook(make_hook(names, coded))
    return module


def export_onnx(
    module: torch.nn.Module,
    args: tuple,
    path: Path,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: Dict[str, Dict[int, str]],
    metadata: Dict[str, str],
    weights: str = "fp32",
) -> None:
    """Export module(*args) to path with opset 17 and the given metadata.

    weights="fp16" stores the parameters as fp16 (see _half_storage_copy); constant folding is
    then off, since it would turn the casts back into fp32 initializers.
    """
    if weights not in WEIGHT_STORAGE:
        raise ValueError(f"weights must be one of {WEIGHT_STORAGE}, not {weights!r}")
    kwargs = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    if weights in ("fp16", "int8"):
        module = _half_storage_copy(module, int8=weights == "int8")
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            module.eval(),
            args,
            buf,
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            do_constant_folding=weights == "fp32",
            **kwargs,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue() + metadata_props(metadata))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_entries(folder: Path, names: List[str]) -> Dict[str, Dict]:
    return {
        n: {"sha256": sha256_file(folder / n), "bytes": (folder / n).stat().st_size} for n in names
    }


# What a bundle folder's manifest pins: its graphs and the weights files they share
# (onnx_shared_weights).
BUNDLE_FILES = ("*.onnx", "*.weights")


def bundle_file_entries(folder: Path) -> Dict[str, Dict]:
    """The manifest's `files`: sha256 and size of every graph and weights file in a bundle."""
    folder = Path(folder)
    return file_entries(folder, sorted({p.name for g in BUNDLE_FILES for p in folder.glob(g)}))
