"""Video feature extractors for Fréchet distances, with their identity recorded beside every value.

`rand3d`: a small 3D CNN with fixed-seed random weights. Random convolutional features are known
to separate distributions reasonably (they react to blur, noise and broken motion), but the
distance is NOT FVD and is never called that: it is logged as `fd_rand3d`, with the extractor's
weight hash, N and preprocessing.

`cls3d`: the penultimate layer of the project's own video classifier (classifier.py), trained on
the dataset's real clips: features that separate exactly the classes the denoiser is asked to
draw. Logged as `fd_cls3d` with the classifier's weight hash (its record's `weights_hash`), its
key and val accuracy, N and preprocessing. It is a Fréchet distance on a trained network of our
own, NOT FVD either.

`lfd` (features of latents, not videos): how far a denoiser's generated latents are from its own
encoded training latents, before any decoder, as a share of the Gaussian noise's distance from
them: `LatentFD`. Decoder-free, so it separates what a latent space does to the denoiser from what
the decoder does to the samples (0 = the data, 1 = where sampling starts; held-out real latents
~0.1 at N = 136). Latent spaces scale it differently (a smoother space moves less under the same
noise), so across spaces read it on each space's own ladder: `noise_equivalent_t` (`lfd_t`).

`i3d`: FVD proper, from I3D Kinetics-400 logits (`i3d.py`), only when the user supplies the
weights file: `FeatureExtractor.i3d(path)`, logged as `fvd_i3d` with the sha256 of that file.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .frechet import feature_stats, frechet_distance


@dataclass(frozen=True)
class Preprocessing:
    frames: int = 16  # the first 16 frames of each clip
    size: int = 64  # bilinear resize of every frame to size x size
    value_range: str = "[-1, 1]"


@dataclass(frozen=True)
class I3DPreprocessing(Preprocessing):
    """The FVD protocol (i3d.preprocess_fvd); the extra fields only describe it."""

    frames: int = 16
    size: int = 224
    resize: str = "bilinear, align_corners=False, then clamp to [-1, 1]"
    frames_rule: str = "first 16 frames; a shorter clip repeats its last frame"
    features: str = "400 Kinetics-400 logits averaged over time"


def random_conv3d(c_in: int, c_out: int, stride, generator: torch.Generator) -> nn.Conv3d:
    """A 3x3x3 convolution with fixed random weights (uniform, variance-preserving bound) drawn
    from `generator`: independent of torch's global RNG and of the torch version's default
    initialiser, so the features (and their weights_hash) are the same everywhere."""
    conv = nn.Conv3d(c_in, c_out, kernel_size=3, stride=stride, padding=1)
    bound = (3.0 / (c_in * 27)) ** 0.5
    with torch.no_grad():
        conv.weight.copy_((torch.rand(conv.weight.shape, generator=generator) * 2 - 1) * bound)
        conv.bias.zero_()
    return conv


class Rand3D(nn.Module):
    """Four strided 3D conv stages over the frames and their temporal differences.

    Features are the global mean and std of every stage, concatenated. Pooled statistics of
    frames alone barely notice shuffled or frozen frames, so the input also carries
    x[t] - x[t-1] (zero for frame 0) as three more channels: motion is seen directly.
    """

    def __init__(self, seed: int = 0, widths=(32, 64, 128, 256)):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        stages, c = [], 6
        for w in widths:
            stages.append(random_conv3d(c, w, (1, 2, 2), g))
            c = w
        self.stages = nn.ModuleList(stages)
        self.requires_grad_(False).eval()

    def forward(self, video: torch.Tensor) -> torch.Tensor:  # (B, 3, T, H, W)
        motion = torch.cat([torch.zeros_like(video[:, :, :1]), video.diff(dim=2)], dim=2)
        feats, x = [], torch.cat([video, 4.0 * motion], dim=1)  # (B, 6, T, H, W)
        for conv in self.stages:
            x = F.leaky_relu(conv(x), 0.2)
            flat = x.flatten(2)  # (B, C, T*H*W)
            feats += [flat.mean(dim=2), flat.std(dim=2)]
        return torch.cat(feats, dim=1)  # (B, 2 * sum(widths))


class ClassifierFeatures(nn.Module):
    """The classifier's penultimate layer (classifier.VideoClassifier.features): what its head
    reads, mean-pooled over time and space."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier
        self.requires_grad_(False).eval()

    def forward(self, video: torch.Tensor) -> torch.Tensor:  # (B, 3, T, S, S), S = its size
        return self.classifier.features(video)  # (B, 4 * width)


class LatentRand3D(nn.Module):
    """Two fixed random 3D conv stages over a scaled latent (B, C, t, h, w); the global mean and
    std of each stage. No temporal stride: a latent has only a few frames."""

    def __init__(self, channels: int, widths=(128, 256), seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        convs, c = [], channels
        for i, w in enumerate(widths):
            convs.append(random_conv3d(c, w, (1, 1 + i, 1 + i), g))  # stride 1, then 2 in space
            c = w
        self.convs = nn.ModuleList(convs)
        self.requires_grad_(False).eval()

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (B, C, t, h, w)
        feats = []
        for conv in self.convs:
            z = F.leaky_relu(conv(z), 0.2)
            flat = z.flatten(2)
            feats += [flat.mean(2), flat.std(2)]
        return torch.cat(feats, 1)  # (B, 2 * sum(widths))


class LatentFD:
    """`lfd` = FD(real latents, generated) / FD(real latents, the noise sampling started from),
    both on LatentRand3D features. `real` and every generated batch are scaled latents (what the
    denoiser sees); `noise` is the sampler's starting noise, the same N as the generated batch, so
    the two distances carry the same small-sample bias."""

    metric = "lfd"

    def __init__(self, real: torch.Tensor, noise: torch.Tensor, seed: int = 0):
        self.net = LatentRand3D(real.shape[1], seed=seed)
        self.hash = weights_hash(self.net)
        self.n_real = len(real)
        self.real = feature_stats(self.features(real))
        self.noise_fd = frechet_distance(*self.real, *feature_stats(self.features(noise)))

    @torch.no_grad()
    def features(self, z: torch.Tensor, batch_size: int = 64) -> np.ndarray:
        return np.concatenate(
            [
                self.net(z[i : i + batch_size].float().cpu()).double().numpy()
                for i in range(0, len(z), batch_size)
            ]
        )

    def distance(self, z: torch.Tensor) -> float:
        """The raw Fréchet distance of generated latents `z` from the real ones."""
        return frechet_distance(*self.real, *feature_stats(self.features(z)))

    def __call__(self, z: torch.Tensor) -> float:
        return self.distance(z) / self.noise_fd

    def describe(self) -> Dict:
        return {
            "metric": self.metric,
            "extractor": "latent_rand3d",
            "extractor_hash": self.hash,
            "n_real": self.n_real,
            "noise_fd": self.noise_fd,
        }


# The blends (1 - t) z + t n of held-out real latents z and Gaussian noise n along which `lfd` is
# read as a noise-equivalent t (noise_equivalent_t); 1.0 is the noise itself.
LFD_LADDER = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)


def lfd_ladder(lfd: LatentFD, held_out: torch.Tensor, noise: torch.Tensor) -> Dict[float, float]:
    """`lfd` of held-out real latents blended with `noise` at each t of LFD_LADDER."""
    return {t: lfd((1 - t) * held_out + t * noise) for t in LFD_LADDER}


def noise_equivalent_t(value: float, ladder: Dict[float, float]) -> float:
    """The t at which the blended real latents' `lfd` equals `value`, linear between the ladder's
    rungs: 0 at or below the floor (t = 0), 1 at or beyond the noise. Latent spaces scale `lfd`
    differently (a smoother space moves less under the same noise), so a ratio of two spaces'
    `lfd` can differ where their samples are equally far along the path from noise to data; t
    reads alike in both. The first rung pair that brackets `value` counts (the ladder need not
    rise past t = 0.5, where a blend's variance is lowest)."""
    ts = sorted(ladder)
    if value <= ladder[ts[0]]:
        return 0.0
    for a, b in zip(ts, ts[1:]):
        lo, hi = ladder[a], ladder[b]
        if min(lo, hi) <= value <= max(lo, hi):
            return a + (b - a) * (value - lo) / (hi - lo) if hi != lo else a
    return 1.0


def weights_hash(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().float().numpy().tobytes())
    return h.hexdigest()[:16]


def preprocess(video: torch.Tensor, pre: Preprocessing) -> torch.Tensor:
    """(B, 3, T, H, W) in [-1, 1] -> (B, 3, frames, size, size); short clips repeat their end."""
    t = video.shape[2]
    if t < pre.frames:
        video = torch.cat([video, video[:, :, -1:].expand(-1, -1, pre.frames - t, -1, -1)], dim=2)
    video = video[:, :, : pre.frames]
    b, c, t, h, w = video.shape
    frames = video.transpose(1, 2).reshape(b * t, c, h, w)
    frames = F.interpolate(frames, size=(pre.size, pre.size), mode="bilinear", align_corners=False)
    return frames.reshape(b, t, c, pre.size, pre.size).transpose(1, 2)


class FeatureExtractor:
    """A named extractor: features(video) -> (B, D) float64 numpy, plus a description to log."""

    def __init__(self, seed: int = 0, pre: Preprocessing = Preprocessing(), device="cpu"):
        self.net = Rand3D(seed).to(device)
        self.pre = pre
        self.device = device
        self.metric = "fd_rand3d"
        self.extractor = "rand3d"
        self.hash = weights_hash(self.net)

    @classmethod
    def i3d(cls, weights_path: Union[str, Path], device="cpu") -> "FeatureExtractor":
        """FVD features from the user's I3D Kinetics-400 weights (see i3d.load_i3d for the
        accepted files; a bad one raises i3d.I3DWeightsError, a missing one FileNotFoundError)."""
        from . import i3d

        self = cls.__new__(cls)
        self.net = i3d.load_i3d(weights_path, device)
        self.pre = I3DPreprocessing()
        self.device = device
        self.metric = "fvd_i3d"
        self.extractor = "i3d"
        self.hash = i3d.file_hash(weights_path)
        return self

    @classmethod
    def classifier(cls, model: nn.Module, info: Dict, frames: int, device="cpu"):
        """fd_cls3d features: `model` is a trained classifier.VideoClassifier, `info` its record
        (classifier.get_classifier); clips are resized as the classifier saw them in training."""
        self = cls.__new__(cls)
        self.net = ClassifierFeatures(model).to(device).eval()
        self.pre = Preprocessing(frames=frames, size=int(info["config"]["size"]))
        self.device = device
        self.metric = "fd_cls3d"
        self.extractor = "cls3d"
        self.hash = weights_hash(model)  # the whole classifier's: info["weights_hash"]
        self.record = {"classifier_key": info.get("key"), "val_accuracy": info.get("val_accuracy")}
        return self

    @torch.no_grad()
    def features(self, video: torch.Tensor, batch_size: int = 16) -> np.ndarray:
        if self.extractor == "i3d":
            from .i3d import i3d_logits

            return i3d_logits(self.net, video, batch_size=batch_size)
        out = []
        for i in range(0, video.shape[0], batch_size):
            x = preprocess(video[i : i + batch_size].to(self.device).float(), self.pre)
            out.append(self.net(x).double().cpu().numpy())
        return np.concatenate(out)

    def describe(self) -> Dict:
        return {
            "metric": self.metric,
            "extractor": self.extractor,
            "extractor_hash": self.hash,
            "preprocessing": asdict(self.pre),
            **getattr(self, "record", {}),
        }
