"""A procedural, labelled video dataset, made offline and deterministically from a seed.

Kinetics is not reachable from here, so the built-in dataset is synthetic but not trivial: each
class has its own look *and* its own motion (fractal zooms, cellular automata, rotating
gradients, scrolling charts, bouncing balls, rotating polygons, ripples, camera pans, zooms
and rotations over the photographs that Debian's python3-skimage ships, and four classes that
move real photographs the way camera video moves: layers with parallax, cut-out objects over a
background, a slow exposure and colour drift, and hand-held shake; their pool adds the
wallpaper photographs of two Debian packages, fetched into the cache by `debian_media`).
Every clip draws its own parameters (positions, speeds, colours, start offsets, which photo)
from a generator seeded by (seed, class, split, clip index), so clips of a class differ, the
result does not depend on the order in which work runs, and the same seed gives a
byte-identical dataset.

Motion parameters are in per-second units, so changing ``fps`` samples the same motion more or
less densely rather than changing what moves how fast.

    PYTHONPATH=src/training python3 -m diffusable.data.procedural --out DIR --seed 0
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import paths
from . import debian_media
from .clips import (
    FORMAT,
    FfmpegError,
    ffmpeg_rgb,
    ffmpeg_version,
    read_dataset_meta,
    write_dataset_meta,
    write_shard,
)

# Bump whenever a change to this file changes the pixels: it is part of the cache key.
GENERATOR_VERSION = 2
PHOTO_DIR = Path("/usr/lib/python3/dist-packages/skimage/data")
SHARD_BYTES = 64 << 20  # shards of at most ~64 MiB keep memory maps and rewrites cheap
FFMPEG_BATCH = 16  # clips per ffmpeg process: start-up (~80 ms) dominates tiny clips


@dataclass(frozen=True)
class ProceduralSpec:
    """Everything that determines the dataset's bytes (with GENERATOR_VERSION)."""

    seed: int = 0
    size: int = 64
    frames: int = 17
    fps: float = 8
    train_per_class: int = 48
    val_per_class: int = 8

    def __post_init__(self) -> None:
        # fps=8 and fps=8.0 are the same dataset: normalise so they hash to the same folder.
        object.__setattr__(self, "fps", float(self.fps))

    def key(self) -> str:
        """Short hash naming the dataset: same spec and generator → same folder."""
        blob = json.dumps(
            {
                "spec": asdict(self),
                "version": GENERATOR_VERSION,
                "classes": class_names(),
                "photos": [Path(p).name for p in scene_photo_pool()],
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:10]

    @property
    def duration(self) -> float:
        return self.frames / self.fps


# --- small numpy helpers -------------------------------------------------------------------


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """HSV in [0, 1] → RGB float in [0, 255]."""
    i = int(h * 6.0) % 6
    f = h * 6.0 - math.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb, dtype=np.float32) * 255.0


def _colour(rng: np.random.Generator, sat=(0.5, 1.0), val=(0.5, 1.0)) -> np.ndarray:
    return _hsv(rng.uniform(), rng.uniform(*sat), rng.uniform(*val))


def _hex(rgb: np.ndarray) -> str:
    r, g, b = (int(round(float(c))) for c in np.clip(rgb, 0, 255))
    return f"0x{r:02x}{g:02x}{b:02x}"


def _mix(a: np.ndarray, b: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Blend colour/images a→b by alpha (..., 1 broadcast over RGB)."""
    return a + (b - a) * alpha[..., None]


def _quantise(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _pixel_grid(size: int) -> Tuple[np.ndarray, np.ndarray]:
    """x, y of pixel centres, (size, size) float32 each."""
    c = np.arange(size, dtype=np.float32) + 0.5
    return np.meshgrid(c, c, indexing="xy")


def _times(spec: ProceduralSpec) -> np.ndarray:
    return (np.arange(spec.frames, dtype=np.float32) / np.float32(spec.fps))[:, None, None]


def _bilinear(img: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Sample img (H, W, 3) at pixel coordinates (pixel centres at integers), edges clamped."""
    h, w = img.shape[:2]
    xs = np.clip(xs, 0, w - 1)
    ys = np.clip(ys, 0, h - 1)
    x0 = np.minimum(xs.astype(np.int32), w - 2)
    y0 = np.minimum(ys.astype(np.int32), h - 2)
    fx = (xs - x0)[..., None]
    fy = (ys - y0)[..., None]
    # Gathering rows of a flat (H*W, 3) view is about twice as fast as 2-D fancy indexing.
    flat = img.reshape(-1, 3)
    i = y0 * w + x0
    top = np.take(flat, i, axis=0)
    top += (np.take(flat, i + 1, axis=0) - top) * fx
    bot = np.take(flat, i + w, axis=0)
    bot += (np.take(flat, i + w + 1, axis=0) - bot) * fx
    top += (bot - top) * fy
    return top


def _camera(
    img: np.ndarray,
    cx: np.ndarray,
    cy: np.ndarray,
    side: np.ndarray,
    angle: np.ndarray,
    size: int,
    supersample: int = 2,
) -> np.ndarray:
    """Frames of a square camera window over img: centre, side (px) and angle per frame (T,).

    Rendered at ``supersample``× and box-averaged, so a window wider than the output does not
    alias into shimmering when it moves.
    """
    n = size * supersample
    u = (np.arange(n, dtype=np.float32) + 0.5) / n - 0.5
    uu, vv = np.meshgrid(u, u, indexing="xy")
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    s = side[:, None, None]
    xs = cx[:, None, None] + s * (cos * uu - sin * vv) - 0.5
    ys = cy[:, None, None] + s * (sin * uu + cos * vv) - 0.5
    out = _bilinear(img, xs, ys)
    k = supersample
    # Box filter as a sum of strided views: much faster than mean() over interleaved axes.
    acc = sum(out[:, i::k, j::k] for i in range(k) for j in range(k))
    return acc * np.float32(1.0 / (k * k))


# --- photographs ---------------------------------------------------------------------------

# Disjoint pools, so each photo class has its own appearance as well as its own camera motion.
PHOTO_POOLS: Dict[str, Tuple[str, ...]] = {
    "photo_pan": (
        "astronaut.png",
        "coffee.png",
        "rocket.jpg",
        "motorcycle_left.png",
        "brick.png",
        "grass.png",
    ),
    "photo_zoom": (
        "chelsea.png",
        "hubble_deep_field.jpg",
        "retina.jpg",
        "camera.png",
        "gravel.png",
    ),
    "photo_rotate": ("ihc.png", "moon.png", "coins.png", "motorcycle_right.png", "cell.png"),
}


def _canvas_side(spec: ProceduralSpec) -> int:
    return 3 * spec.size


class _Photos:
    """Photographs centre-cropped to a square canvas of 3× the clip size, loaded once."""

    def __init__(self, side: int) -> None:
        self.side = side
        self._cache: Dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def load(self, name: str) -> np.ndarray:
        with self._lock:
            if name in self._cache:
                return self._cache[name]
        path = Path(name) if os.path.isabs(name) else PHOTO_DIR / name
        if not path.is_file():
            raise FileNotFoundError(f"sample photo {path} not found (install python3-skimage)")
        s = self.side
        vf = f"scale={s}:{s}:force_original_aspect_ratio=increase:flags=bicubic,crop={s}:{s}"
        img = ffmpeg_rgb(["-i", str(path), "-vf", vf, "-frames:v", "1"], s, s)
        arr = img[0].astype(np.float32)
        with self._lock:
            self._cache[name] = arr
        return arr


def _graded_photo(rng: np.random.Generator, photos: _Photos, pool: Sequence[str]) -> np.ndarray:
    """A random photo from the pool with a random flip and grade; grey ones get a duotone."""
    img = photos.load(pool[int(rng.integers(len(pool)))])
    if rng.uniform() < 0.5:
        img = img[:, ::-1]
    if np.ptp(img - img.mean(axis=2, keepdims=True)) < 1.0:  # greyscale photo
        lum = img[..., 0] / 255.0
        dark = _colour(rng, sat=(0.3, 0.9), val=(0.0, 0.35))
        light = _colour(rng, sat=(0.0, 0.5), val=(0.8, 1.0))
        return _mix(dark, light, lum)
    gain = rng.uniform(0.8, 1.2, size=3).astype(np.float32)
    return img * gain


# --- the classes ---------------------------------------------------------------------------

Rendered = Union[str, np.ndarray]  # an ffmpeg filter chain (batched later) or uint8 frames


@dataclass(frozen=True)
class ClipClass:
    name: str
    about: str
    render: Callable[[np.random.Generator, ProceduralSpec, _Photos], Rendered]
    uses_ffmpeg: bool


def _src(spec: ProceduralSpec, w: Optional[int] = None, h: Optional[int] = None) -> str:
    w = w or spec.size
    h = h or spec.size
    return f"s={w}x{h}:r={spec.fps:g}"


def _duotone_lut(dark: np.ndarray, light: np.ndarray) -> str:
    """ffmpeg lutrgb mapping black→dark and white→light, per channel (grey input)."""
    parts = []
    for ch, a, b in zip("rgb", dark, light):
        a, b = int(round(float(a))), int(round(float(b)))
        parts.append(f"{ch}={a}{b - a:+d}*val/255")
    return "format=rgb24,lutrgb=" + ":".join(parts)


# Points on the Mandelbrot set's boundary where zooming keeps showing structure.
MANDEL_POINTS = (
    (-0.743643887, 0.131825904),
    (-0.745300, 0.112700),
    (-0.160700, 1.040100),
    (-1.250660, 0.020120),
    (0.285000, 0.010000),
    (-0.101100, 0.956300),
    (-1.768778, 0.001739),
    (-0.088000, 0.654000),
)


def _mandelbrot(rng: np.random.Generator, spec: ProceduralSpec, _: _Photos) -> Rendered:
    x, y = MANDEL_POINTS[int(rng.integers(len(MANDEL_POINTS)))]
    s0 = float(np.exp(rng.uniform(np.log(0.01), np.log(0.6))))
    x += rng.uniform(-0.05, 0.05) * s0
    y += rng.uniform(-0.05, 0.05) * s0
    zoom = rng.uniform(1.6, 3.0) ** spec.duration  # 1.6–3× per second
    maxiter = int(min(1500, 200 + 120 * math.log2(3.0 / s0)))
    outer = int(rng.choice([0, 1, 3]))
    inner = int(rng.integers(4))
    return (
        f"mandelbrot={_src(spec)}:maxiter={maxiter}:start_x={x:.9f}:start_y={y:.9f}"
        f":start_scale={s0:.6g}:end_scale={s0 / zoom:.6g}:end_pts={spec.frames}"
        f":outer={outer}:inner={inner}"
        f",hue=h={rng.uniform(0, 360):.1f}:s={rng.uniform(0.7, 1.4):.2f}"
    )


LIFE_RULES = ("B3/S23", "B36/S23", "B3678/S34678", "B34/S34", "B368/S245")


def _life(rng: np.random.Generator, spec: ProceduralSpec, _: _Photos) -> Rendered:
    cell = 4 if spec.size >= 64 else 2
    g = max(8, spec.size // cell)
    skip = int(rng.integers(2, 12))  # past the random-fill first generations
    life = _colour(rng, sat=(0.6, 1.0), val=(0.8, 1.0))
    death = _colour(rng, sat=(0.3, 1.0), val=(0.0, 0.3))
    mold = _mix(death, life, np.float32(0.4))
    return (
        f"life={_src(spec, g, g)}:seed={int(rng.integers(2**31))}"
        f":rule={LIFE_RULES[int(rng.integers(len(LIFE_RULES)))]}"
        f":ratio={rng.uniform(0.2, 0.5):.3f}:mold={int(rng.choice([0, 8, 20]))}"
        f":life_color={_hex(life)}:death_color={_hex(death)}:mold_color={_hex(mold)}"
        f",trim=start_frame={skip},setpts=PTS-STARTPTS"
        f",scale={spec.size}:{spec.size}:flags=neighbor"
    )


CA_RULES = (18, 22, 30, 45, 54, 57, 73, 86, 89, 90, 105, 110, 124, 126, 150, 182)


def _cellauto(rng: np.random.Generator, spec: ProceduralSpec, _: _Photos) -> Rendered:
    cell = 2 if spec.size >= 48 else 1  # single-pixel cells read as noise at 64²
    g = spec.size // cell
    lut = _duotone_lut(_colour(rng, val=(0.0, 0.4)), _colour(rng, sat=(0.2, 1.0), val=(0.7, 1.0)))
    return (
        f"cellauto={_src(spec, g, g)}:rule={CA_RULES[int(rng.integers(len(CA_RULES)))]}"
        f":seed={int(rng.integers(2**31))}:random_fill_ratio={rng.uniform(0.2, 0.6):.3f}"
        f":scroll=1:full=1,scale={spec.size}:{spec.size}:flags=neighbor,{lut}"
    )


def _testsrc2(rng: np.random.Generator, spec: ProceduralSpec, _: _Photos) -> Rendered:
    big = 2 * int(spec.size * rng.uniform(1.0, 2.0) / 2)  # even, so the pattern renders whole
    x, y = (int(rng.integers(0, big - spec.size + 1)) for _ in range(2))
    skip = int(rng.integers(0, int(10 * spec.fps)))  # the counter and moving parts differ
    return (
        f"testsrc2={_src(spec, big, big)},trim=start_frame={skip},setpts=PTS-STARTPTS"
        f",crop={spec.size}:{spec.size}:{x}:{y},hue=h={rng.uniform(0, 360):.1f}"
    )


def _gradients(rng: np.random.Generator, spec: ProceduralSpec, _: _Photos) -> Rendered:
    n = int(rng.integers(2, 6))
    colours = "".join(f":c{i}={_hex(_colour(rng))}" for i in range(n))
    omega = rng.uniform(0.6, 2.0)  # rad/s; ffmpeg's speed is per frame and must be positive
    flip = ",hflip" if rng.uniform() < 0.5 else ""
    return (
        f"gradients={_src(spec)}:n={n}{colours}:seed={int(rng.integers(2**31))}"
        f":speed={min(1.0, omega / spec.fps):.5f}{flip}"
    )


CHARTS = ("rgbtestsrc", "smptebars", "smptehdbars", "pal100bars", "colorspectrum", "colorchart")


def _scrolling_chart(rng: np.random.Generator, spec: ProceduralSpec, _: _Photos) -> Rendered:
    chart = CHARTS[int(rng.integers(len(CHARTS)))]
    if chart == "colorchart":  # fixed patch size: render its native size and scale
        src = f"colorchart=r={spec.fps:g},scale={spec.size}:{spec.size}"
    else:
        src = f"{chart}={_src(spec)}"
    turn = ",transpose=1" if rng.uniform() < 0.5 else ""
    # Scroll speeds in image widths per second, converted to ffmpeg's per-frame fraction.
    h = rng.choice([-1, 1]) * rng.uniform(0.15, 0.5) / spec.fps
    v = (rng.uniform(-0.3, 0.3) if rng.uniform() < 0.5 else 0.0) / spec.fps
    return (
        f"{src}{turn},format=rgb24,scroll=h={h:.5f}:v={v:.5f}"
        f":hpos={rng.uniform():.3f}:vpos={rng.uniform():.3f},hue=h={rng.uniform(0, 360):.1f}"
    )


def _sierpinski(rng: np.random.Generator, spec: ProceduralSpec, _: _Photos) -> Rendered:
    lut = _duotone_lut(_colour(rng, val=(0.6, 1.0)), _colour(rng, val=(0.0, 0.5)))
    return (
        f"sierpinski={_src(spec)}:seed={int(rng.integers(2**31))}:jump={int(rng.integers(1, 4))}"
        f":type={int(rng.integers(2))},{lut}"
    )


def _bouncing_balls(rng: np.random.Generator, spec: ProceduralSpec, _: _Photos) -> Rendered:
    s = spec.size
    xs, ys = _pixel_grid(s)
    t = _times(spec)
    top, bottom = _colour(rng, sat=(0.0, 0.6), val=(0.1, 0.9)), _colour(rng, val=(0.1, 0.9))
    frame = _mix(top, bottom, np.broadcast_to(ys / s, (spec.frames, s, s)))
    for _ in range(int(rng.integers(1, 4))):
        r = s * rng.uniform(0.08, 0.18)
        speed, heading = s * rng.uniform(0.5, 1.2), rng.uniform(0, 2 * np.pi)
        centre = []
        for p0, v in (
            (rng.uniform(r, s - r), speed * np.cos(heading)),
            (rng.uniform(r, s - r), speed * np.sin(heading)),
        ):
            span = s - 2 * r
            q = np.mod(p0 - r + v * t, 2 * span)  # closed-form bounce: a triangle wave
            centre.append(r + np.where(q < span, q, 2 * span - q))
        dist = np.sqrt((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2)
        alpha = np.clip(r - dist + 0.5, 0.0, 1.0)  # one-pixel anti-aliased edge
        frame = _mix(frame, _colour(rng, sat=(0.6, 1.0), val=(0.7, 1.0)), alpha)
    return _quantise(frame)


def _rotating_polygon(rng: np.random.Generator, spec: ProceduralSpec, _: _Photos) -> Rendered:
    s = spec.size
    xs, ys = _pixel_grid(s)
    t = _times(spec)
    n = int(rng.integers(3, 7))
    radius = s * rng.uniform(0.22, 0.38)
    omega = rng.choice([-1, 1]) * rng.uniform(0.8, 2.5)  # rad/s, below the n-fold symmetry
    # A slow drift along a small circle, so the shape is not pinned to the centre.
    orbit, w0, ph = s * rng.uniform(0.0, 0.12), rng.uniform(0.3, 1.0), rng.uniform(0, 2 * np.pi)
    cx = s / 2 + orbit * np.cos(w0 * t + ph)
    cy = s / 2 + orbit * np.sin(w0 * t + ph)
    dx, dy = xs - cx, ys - cy
    rho = np.sqrt(dx**2 + dy**2)
    theta = np.arctan2(dy, dx) - (rng.uniform(0, 2 * np.pi) + omega * t)
    sector = 2 * np.pi / n
    local = np.mod(theta, sector) - sector / 2
    signed = radius * np.cos(np.pi / n) - rho * np.cos(local)  # distance inside the edge
    alpha = np.clip(signed + 0.5, 0.0, 1.0)
    inner = np.clip(signed - radius * 0.35 + 0.5, 0.0, 1.0)  # an inset, two-tone face
    bg_a, bg_b = _colour(rng, val=(0.05, 0.6)), _colour(rng, val=(0.05, 0.6))
    frame = _mix(bg_a, bg_b, np.broadcast_to((xs + ys) / (2 * s), alpha.shape))
    frame = _mix(frame, _colour(rng, sat=(0.6, 1.0), val=(0.7, 1.0)), alpha)
    return _quantise(_mix(frame, _colour(rng, sat=(0.3, 1.0), val=(0.4, 1.0)), inner))


def _ripples(rng: np.random.Generator, spec: ProceduralSpec, _: _Photos) -> Rendered:
    s = spec.size
    xs, ys = _pixel_grid(s)
    t = _times(spec)
    cx, cy = rng.uniform(-0.2, 1.2, size=2) * s
    wavelength = s * rng.uniform(0.12, 0.35)
    hz = rng.uniform(0.4, 1.4)  # rings per second leaving the centre
    dist = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2)
    wave = 0.5 + 0.5 * np.cos(2 * np.pi * (dist / wavelength - hz * t))
    fade = np.exp(-dist / (s * rng.uniform(0.5, 2.0)))  # rings soften away from the source
    a, b = _colour(rng, val=(0.0, 0.5)), _colour(rng, sat=(0.3, 1.0), val=(0.7, 1.0))
    return _quantise(_mix(a, b, wave * (0.35 + 0.65 * fade)))


def _photo_pan(rng: np.random.Generator, spec: ProceduralSpec, photos: _Photos) -> Rendered:
    img = _graded_photo(rng, photos, PHOTO_POOLS["photo_pan"])
    c = img.shape[0]
    side = spec.size * rng.uniform(1.0, 1.6)
    lo, hi = side / 2, c - side / 2
    heading = rng.uniform(0, 2 * np.pi)
    travel = spec.size * rng.uniform(0.3, 0.8) * spec.duration  # 0.3–0.8 clip widths per second
    dx, dy = travel * np.cos(heading), travel * np.sin(heading)
    # Shorten the path if it cannot fit on the canvas, then start where the whole path fits.
    shrink = min(
        1.0, 0.999 * (hi - lo) / max(abs(dx), 1e-6), 0.999 * (hi - lo) / max(abs(dy), 1e-6)
    )
    dx, dy = dx * shrink, dy * shrink
    x0 = rng.uniform(lo - min(dx, 0), hi - max(dx, 0))
    y0 = rng.uniform(lo - min(dy, 0), hi - max(dy, 0))
    f = np.arange(spec.frames, dtype=np.float32) / max(spec.frames - 1, 1)
    sides = np.full(spec.frames, side, np.float32)
    frames = _camera(img, x0 + dx * f, y0 + dy * f, sides, np.zeros_like(f), spec.size)
    return _quantise(frames)


def _photo_zoom(rng: np.random.Generator, spec: ProceduralSpec, photos: _Photos) -> Rendered:
    img = _graded_photo(rng, photos, PHOTO_POOLS["photo_zoom"])
    c = img.shape[0]
    wide = spec.size * rng.uniform(1.8, 2.8)
    total = min(rng.uniform(1.4, 2.0) ** spec.duration, wide / (0.8 * spec.size))
    cx, cy = rng.uniform(wide / 2, c - wide / 2, size=2)
    f = np.arange(spec.frames, dtype=np.float32) / max(spec.frames - 1, 1)
    if rng.uniform() < 0.5:
        f = f[::-1]  # zoom out instead of in
    sides = (wide * total ** (-f)).astype(np.float32)
    # Drift the centre a little toward a second point, as a hand-held zoom would.
    tx, ty = rng.uniform(wide / 2, c - wide / 2, size=2)
    k = np.float32(rng.uniform(0.0, 0.25))
    xs = cx + (tx - cx) * k * f
    ys = cy + (ty - cy) * k * f
    return _quantise(_camera(img, xs, ys, sides, np.zeros_like(f), spec.size))


def _photo_rotate(rng: np.random.Generator, spec: ProceduralSpec, photos: _Photos) -> Rendered:
    img = _graded_photo(rng, photos, PHOTO_POOLS["photo_rotate"])
    c = img.shape[0]
    side = spec.size * rng.uniform(1.0, 1.5)
    reach = side / math.sqrt(2)  # the rotated window's corners must stay on the canvas
    cx, cy = rng.uniform(reach, c - reach, size=2)
    omega = rng.choice([-1, 1]) * rng.uniform(0.5, 1.5)
    angle = (rng.uniform(0, 2 * np.pi) + omega * _times(spec)[:, 0, 0]).astype(np.float32)
    n = spec.frames
    xs, ys = np.full(n, cx, np.float32), np.full(n, cy, np.float32)
    return _quantise(_camera(img, xs, ys, np.full(n, side, np.float32), angle, spec.size))


# --- photographs moving as camera video does -----------------------------------------------

# skimage's colour photographs (all pools above), then Debian's wallpapers when available.
_SCENE_BASE = tuple(sorted({n for pool in PHOTO_POOLS.values() for n in pool}))
_scene_pool: Optional[Tuple[str, ...]] = None


def scene_photo_pool() -> Tuple[str, ...]:
    """The photo pool of the scene classes; its names are part of the dataset's cache key."""
    global _scene_pool
    if _scene_pool is None:
        _scene_pool = _SCENE_BASE + tuple(str(p) for p in debian_media.photos())
    return _scene_pool


def _path_frames(spec: ProceduralSpec) -> np.ndarray:
    return np.arange(spec.frames, dtype=np.float32) / max(spec.frames - 1, 1)


def _soft_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random soft-edged ellipse or superellipse of a square patch, (size, size) in [0, 1]."""
    u = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    xx, yy = np.meshgrid(u, u, indexing="xy")
    a, b = rng.uniform(0.55, 0.95, size=2)
    power = rng.choice([2.0, 2.0, 4.0, 1.0])  # ellipse, rounded box, diamond
    r = (np.abs(xx / a) ** power + np.abs(yy / b) ** power) ** (1 / power)
    return np.clip((1.0 - r) * size / 4, 0, 1).astype(np.float32)


def _photo_parallax(rng: np.random.Generator, spec: ProceduralSpec, photos: _Photos) -> Rendered:
    """Two or three photo layers panning at different speeds: near layers move faster."""
    pool = scene_photo_pool()
    n = spec.size
    f = _path_frames(spec)
    heading = rng.uniform(0, 2 * np.pi)
    base = n * rng.uniform(0.08, 0.2) * spec.duration
    dx, dy = np.cos(heading), np.sin(heading)
    img = _graded_photo(rng, photos, pool)
    c = img.shape[0]
    side = n * rng.uniform(1.0, 1.4)
    x0, y0 = rng.uniform(side / 2 + base, c - side / 2 - base, size=2)
    zeros = np.zeros_like(f)
    frames = _camera(img, x0 + dx * base * f, y0 + dy * base * f, np.full_like(f, side), zeros, n)
    xx, yy = _pixel_grid(n)
    for depth in range(int(rng.integers(1, 3))):
        layer = _graded_photo(rng, photos, pool)
        speed = min(base * (1.6 + 0.8 * depth) * rng.uniform(0.8, 1.2), (c - n) / 2 - 2)
        lx, ly = rng.uniform(n / 2 + speed, c - n / 2 - speed, size=2)
        moving = _camera(
            layer, lx + dx * speed * f, ly + dy * speed * f, np.full_like(f, n), zeros, n
        )
        # A band across the frame (a ridge, a fence, a nearer wall) with a wavy soft edge.
        angle = heading + np.pi / 2 + rng.uniform(-0.4, 0.4)
        nx, ny = np.cos(angle), np.sin(angle)
        offset = rng.uniform(-0.3, 0.3) * n
        wave = rng.uniform(2, 6) * np.sin(
            rng.uniform(0.05, 0.2) * (xx * ny - yy * nx) + rng.uniform(0, 6)
        )
        shift = (dx * nx + dy * ny) * speed * f[:, None, None]
        dist = (xx - n / 2) * nx + (yy - n / 2) * ny - offset + wave[None] - shift
        alpha = np.clip(dist / 2.0 + 0.5, 0, 1).astype(np.float32)
        frames = _mix(frames, moving, alpha)
    return _quantise(frames)


def _photo_cutout(rng: np.random.Generator, spec: ProceduralSpec, photos: _Photos) -> Rendered:
    """One to three cut-out photo objects gliding and turning over a slowly panning photo."""
    pool = scene_photo_pool()
    n = spec.size
    f = _path_frames(spec)
    img = _graded_photo(rng, photos, pool)
    c = img.shape[0]
    side = n * rng.uniform(1.0, 1.5)
    drift = n * rng.uniform(0.0, 0.15) * spec.duration
    h = rng.uniform(0, 2 * np.pi)
    x0, y0 = rng.uniform(side / 2 + drift, c - side / 2 - drift, size=2)
    xs, ys = x0 + np.cos(h) * drift * f, y0 + np.sin(h) * drift * f
    frames = _camera(img, xs, ys, np.full_like(f, side), np.zeros_like(f), n)
    for _ in range(int(rng.integers(1, 4))):
        obj_side = int(n * rng.uniform(0.3, 0.6))
        tex = _graded_photo(rng, photos, pool)
        tx, ty = rng.uniform(obj_side, c - obj_side, size=2)
        spin = rng.uniform(-1.0, 1.0) * _times(spec)[:, 0, 0]
        patch = _camera(
            tex,
            np.full_like(f, tx),
            np.full_like(f, ty),
            np.full_like(f, obj_side),
            spin.astype(np.float32),
            obj_side,
            1,
        )
        mask = _soft_mask(rng, obj_side)
        # A straight path across the frame, in or out of view at either end.
        (px0, py0), (px1, py1) = rng.uniform(-0.2 * n, 1.2 * n, size=(2, 2))
        for t in range(spec.frames):
            cx = px0 + (px1 - px0) * f[t] - obj_side / 2
            cy = py0 + (py1 - py0) * f[t] - obj_side / 2
            ix, iy = int(round(cx)), int(round(cy))
            x_lo, y_lo = max(ix, 0), max(iy, 0)
            x_hi, y_hi = min(ix + obj_side, n), min(iy + obj_side, n)
            if x_lo >= x_hi or y_lo >= y_hi:
                continue
            sub = patch[t, y_lo - iy : y_hi - iy, x_lo - ix : x_hi - ix]
            a = mask[y_lo - iy : y_hi - iy, x_lo - ix : x_hi - ix]
            frames[t, y_lo:y_hi, x_lo:x_hi] = _mix(frames[t, y_lo:y_hi, x_lo:x_hi], sub, a)
    return _quantise(frames)


def _photo_drift(rng: np.random.Generator, spec: ProceduralSpec, photos: _Photos) -> Rendered:
    """A nearly still shot whose exposure, white balance and contrast drift slowly."""
    pool = scene_photo_pool()
    n = spec.size
    f = _path_frames(spec)
    img = _graded_photo(rng, photos, pool)
    c = img.shape[0]
    side = n * rng.uniform(1.0, 1.6)
    cx, cy = rng.uniform(side / 2, c - side / 2, size=2)
    creep = rng.uniform(0.97, 1.0) ** (f * spec.duration)  # a very slow zoom
    frames = _camera(
        img,
        np.full_like(f, cx),
        np.full_like(f, cy),
        (side * creep).astype(np.float32),
        np.zeros_like(f),
        n,
    )
    ev = rng.uniform(-1.0, 1.0) * f  # exposure in stops over the clip
    balance = 1.0 + rng.uniform(-0.25, 0.25, size=3)[None] * f[:, None]  # (T, 3)
    gamma = 1.0 + rng.uniform(-0.3, 0.3) * f
    x = np.clip(frames / 255.0, 0, 1) * (2.0**ev)[:, None, None, None] * balance[:, None, None, :]
    x = np.clip(x, 0, 1) ** gamma[:, None, None, None]
    return _quantise(x * 255.0)


def _photo_shake(rng: np.random.Generator, spec: ProceduralSpec, photos: _Photos) -> Rendered:
    """A hand-held camera: a slow aim plus jitter in position and roll, frame to frame."""
    pool = scene_photo_pool()
    n = spec.size
    f = _path_frames(spec)
    img = _graded_photo(rng, photos, pool)
    c = img.shape[0]
    side = n * rng.uniform(1.0, 1.25)
    amp = n * rng.uniform(0.02, 0.08)
    margin = side / math.sqrt(2) + 2 * amp + n * 0.2  # roll, jitter and aim stay on the canvas
    cx, cy = rng.uniform(margin, c - margin, size=2)
    aim = rng.uniform(-0.2, 0.2, size=2) * n
    # Jitter: a random walk smoothed a little (hands shake at a few Hz, not per pixel).
    walk = np.cumsum(rng.normal(0, 1, size=(spec.frames, 3)), axis=0)
    walk -= walk.mean(axis=0)
    walk = walk / max(np.abs(walk).max(), 1e-6)
    xs = (cx + aim[0] * f + amp * walk[:, 0]).astype(np.float32)
    ys = (cy + aim[1] * f + amp * walk[:, 1]).astype(np.float32)
    roll = (rng.uniform(0.01, 0.06) * walk[:, 2]).astype(np.float32)
    return _quantise(_camera(img, xs, ys, np.full_like(f, side), roll, n))


CLASSES: Tuple[ClipClass, ...] = (
    ClipClass("mandelbrot_zoom", "zoom into the Mandelbrot set's boundary", _mandelbrot, True),
    ClipClass("game_of_life", "life-like cellular automata evolving", _life, True),
    ClipClass("cellular_automaton", "1D elementary automaton scrolling up", _cellauto, True),
    ClipClass("test_pattern", "ffmpeg testsrc2 crops: moving marks, counter", _testsrc2, True),
    ClipClass("rotating_gradient", "multi-colour linear gradient rotating", _gradients, True),
    ClipClass("scrolling_chart", "colour bars/charts scrolling sideways", _scrolling_chart, True),
    ClipClass("sierpinski", "Sierpinski carpet/triangle drifting", _sierpinski, True),
    ClipClass("bouncing_balls", "1–3 discs bouncing off the walls", _bouncing_balls, False),
    ClipClass("rotating_polygon", "two-tone regular polygon spinning", _rotating_polygon, False),
    ClipClass("ripples", "concentric rings spreading from a point", _ripples, False),
    ClipClass("photo_pan", "camera panning over a photograph", _photo_pan, False),
    ClipClass("photo_zoom", "camera zooming in or out on a photograph", _photo_zoom, False),
    ClipClass("photo_rotate", "camera rotating over a photograph", _photo_rotate, False),
    ClipClass(
        "photo_parallax", "photo layers panning at depth-dependent speeds", _photo_parallax, False
    ),
    ClipClass("photo_cutout", "cut-out photo objects moving over a photo", _photo_cutout, False),
    ClipClass("photo_drift", "still shot with exposure and colour drifting", _photo_drift, False),
    ClipClass("photo_shake", "hand-held camera shake over a photograph", _photo_shake, False),
)


def class_names() -> List[str]:
    return [c.name for c in CLASSES]


# --- generation ----------------------------------------------------------------------------

SPLITS = ("train", "val")


def _clip_rng(spec: ProceduralSpec, cls: ClipClass, split: str, index: int) -> np.random.Generator:
    # Seeded per clip (not drawn in sequence) so results never depend on scheduling.
    entropy = [spec.seed, zlib.crc32(cls.name.encode()), SPLITS.index(split), index]
    return np.random.default_rng(entropy)


def _ffmpeg_batch(chains: Sequence[str], spec: ProceduralSpec) -> np.ndarray:
    """Run several lavfi chains in one ffmpeg process, concatenated; → (N, T, S, S, 3)."""
    parts, labels = [], ""
    for i, chain in enumerate(chains):
        parts.append(
            f"{chain},trim=end_frame={spec.frames},setpts=PTS-STARTPTS,format=rgb24,setsar=1[v{i}]"
        )
        labels += f"[v{i}]"
    graph = ";".join(parts) + f";{labels}concat=n={len(chains)}:v=1:a=0[out]"
    # One filter thread: the pool already runs a process per core, and it keeps bytes stable.
    args = ["-filter_threads", "1", "-filter_complex_threads", "1"]
    frames = ffmpeg_rgb([*args, "-filter_complex", graph, "-map", "[out]"], spec.size, spec.size)
    want = len(chains) * spec.frames
    if frames.shape[0] != want:
        raise FfmpegError(f"ffmpeg produced {frames.shape[0]} frames, expected {want}")
    return frames.reshape(len(chains), spec.frames, spec.size, spec.size, 3)


def _render(
    cls: ClipClass, split: str, indices: Sequence[int], spec: ProceduralSpec, photos: _Photos
) -> np.ndarray:
    outs = [cls.render(_clip_rng(spec, cls, split, i), spec, photos) for i in indices]
    if cls.uses_ffmpeg:
        return _ffmpeg_batch(outs, spec)  # type: ignore[arg-type]
    return np.stack(outs)  # type: ignore[arg-type]


def generate_split(
    spec: ProceduralSpec, split: str, per_class: int, workers: Optional[int] = None
) -> Tuple[np.ndarray, np.ndarray]:
    """All clips of a split, interleaved by class (clip 0 of every class, then clip 1, ...)."""
    photos = _Photos(_canvas_side(spec))
    chunks = [
        (k, list(range(i, min(i + FFMPEG_BATCH, per_class))))
        for k in range(len(CLASSES))
        for i in range(0, per_class, FFMPEG_BATCH)
    ]
    n_classes = len(CLASSES)
    clips = np.empty((per_class * n_classes, spec.frames, spec.size, spec.size, 3), np.uint8)

    def run(job: Tuple[int, List[int]]) -> None:
        k, idx = job
        rendered = _render(CLASSES[k], split, idx, spec, photos)
        clips[np.array(idx) * n_classes + k] = rendered

    # Threads suffice: ffmpeg runs in child processes and numpy releases the GIL in big ops.
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        list(pool.map(run, chunks))
    labels = np.tile(np.arange(n_classes, dtype=np.int64), per_class)
    return clips, labels


def _write_dataset(out: Path, spec: ProceduralSpec, workers: Optional[int]) -> None:
    splits = {}
    for split, per_class in (("train", spec.train_per_class), ("val", spec.val_per_class)):
        clips, labels = generate_split(spec, split, per_class, workers)
        per_shard = max(1, SHARD_BYTES // max(1, clips[0].nbytes if len(clips) else 1))
        stems = [
            write_shard(out, split, j, clips[i : i + per_shard], labels[i : i + per_shard])
            for j, i in enumerate(range(0, len(clips), per_shard))
        ]
        splits[split] = {"shards": stems, "count": int(len(clips))}
    fps = int(spec.fps) if float(spec.fps).is_integer() else spec.fps
    meta = {
        "format": FORMAT,
        "name": f"procedural-{spec.key()}",
        "classes": class_names(),
        "frames": spec.frames,
        "height": spec.size,
        "width": spec.size,
        "fps": fps,
        "splits": splits,
        "source": {
            "kind": "procedural",
            "generator": "diffusable.data.procedural",
            "version": GENERATOR_VERSION,
            "spec": asdict(spec),
            "key": spec.key(),
            "descriptions": {c.name: c.about for c in CLASSES},
            "ffmpeg": ffmpeg_version(),
        },
        "failed": [],
    }
    write_dataset_meta(out, meta)


def _is_complete(path: Path, spec: ProceduralSpec) -> bool:
    try:
        meta = read_dataset_meta(path)
    except (FileNotFoundError, ValueError):
        return False
    return meta.get("source", {}).get("key") == spec.key()


def _remove_stale_temps(parent: Path, prefix: str) -> None:
    """Delete temp folders left by interrupted runs whose process is gone."""
    for tmp in parent.glob(f"{prefix}*"):
        try:
            pid = int(tmp.name[len(prefix) :].split("-")[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except (ValueError, PermissionError):
            pass


def build_procedural(
    out: Union[str, Path], spec: ProceduralSpec, workers: Optional[int] = None
) -> Path:
    """Generate ``spec`` into folder ``out`` unless it already holds it; return ``out``.

    The dataset is written into a temporary sibling and renamed into place, so an interrupted
    run never leaves a half dataset under the final name.
    """
    out = Path(out)
    if _is_complete(out, spec):
        return out
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and does not hold this procedural dataset")
    out.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{out.name}.tmp-"
    _remove_stale_temps(out.parent, prefix)
    tmp = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=out.parent))
    try:
        _write_dataset(tmp, spec, workers)
        if out.exists():
            out.rmdir()  # an empty folder (checked above), e.g. made by the caller
        os.rename(tmp, out)
    except OSError:
        if _is_complete(out, spec):  # another process finished the same dataset first
            shutil.rmtree(tmp, ignore_errors=True)
            return out
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def ensure_procedural(
    cache_root: Union[str, Path, None] = None,
    *,
    seed: int = 0,
    size: int = 64,
    frames: int = 17,
    fps: float = 8,
    train_per_class: int = 48,
    val_per_class: int = 8,
    workers: Optional[int] = None,
) -> Path:
    """Path of ``<cache_root>/procedural-<spec hash>/``, generating it first if absent."""
    spec = ProceduralSpec(seed, size, frames, fps, train_per_class, val_per_class)
    root = Path(cache_root) if cache_root is not None else paths.cache_root()
    return build_procedural(root / f"procedural-{spec.key()}", spec, workers)


# --- CLI -----------------------------------------------------------------------------------


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = _OneLineParser(prog="diffusable.data.procedural", description=__doc__.split("\n")[0])
    p.add_argument("--out", help="dataset folder (default: <cache>/procedural-<spec hash>)")
    p.add_argument(
        "--cache",
        help="cache root when --out is not given (default: $DIFFUSABLE_CACHE or <repo>/.cache)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--fps", type=float, default=8)
    p.add_argument("--train-per-class", type=int, default=48)
    p.add_argument("--val-per-class", type=int, default=8)
    p.add_argument("--workers", type=int, default=None, help="threads (default: all cores)")
    a = p.parse_args(argv)
    if a.size < 16 or a.frames < 1 or a.fps <= 0 or a.train_per_class < 1 or a.val_per_class < 0:
        p.error("need --size >= 16, --frames >= 1, --fps > 0, per-class counts >= 1 (val >= 0)")
    spec = ProceduralSpec(a.seed, a.size, a.frames, a.fps, a.train_per_class, a.val_per_class)
    start = time.monotonic()
    try:
        if a.out:
            path = build_procedural(a.out, spec, a.workers)
        else:
            path = ensure_procedural(
                a.cache,
                seed=a.seed,
                size=a.size,
                frames=a.frames,
                fps=a.fps,
                train_per_class=a.train_per_class,
                val_per_class=a.val_per_class,
                workers=a.workers,
            )
    except (OSError, FfmpegError) as e:  # missing photos, ffmpeg, or a taken --out
        p.exit(1, f"{p.prog}: error: {e}\n")
    meta = read_dataset_meta(path)
    counts = ", ".join(f"{k} {v['count']}" for k, v in sorted(meta["splits"].items()))
    print(
        f"{len(meta['classes'])} classes, {counts} clips of {spec.frames}x{spec.size}x{spec.size}"
        f" in {time.monotonic() - start:.1f} s",
        file=sys.stderr,
    )
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
