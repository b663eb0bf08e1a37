"""Does swscale's default 4:2:0 -> RGB conversion leave a 2-pixel pattern in decoded inputs?

    /usr/bin/python3 docs/results/grid-codec/input_chroma.py $(find .cache/debian -type f \\
        \\( -name "*.mp4" -o -name "*.ogv" -o -name "*.avi" \\) | grep -v kphotoalbum | head -11)

The first 32 frames of each video through the chain of data/ingest.py and video.ts's
frameFilter (8 fps, square pixels, scaled to cover 64x64, centre crop), with today's default
flags and with full chroma interpolation; the mean |step| after even and after odd columns.
"""

import subprocess
import sys

import numpy as np


def frames(path: str, flags: str) -> np.ndarray:
    sc = f":flags={flags}" if flags else ""
    vf = f"fps=8,scale=iw*sar:ih{sc},setsar=1,"
    vf += f"scale=64:64:force_original_aspect_ratio=increase{sc},crop=64:64"
    cmd = ["ffmpeg", "-v", "error", "-i", path, "-vf", vf, "-frames:v", "32"]
    out = subprocess.run(cmd + ["-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True)
    return np.frombuffer(out.stdout, np.uint8).reshape(-1, 64, 64, 3).astype(float)


for flags in ["", "bicubic+full_chroma_int+accurate_rnd"]:
    even, odd = [], []
    for f in sys.argv[1:]:
        steps = np.abs(np.diff(frames(f, flags), axis=2)).mean(axis=(0, 1, 3))  # (63,) per column
        even.append(steps[0::2].mean())
        odd.append(steps[1::2].mean())
    name = flags or "default (ingest.py, video.ts today)"
    print(f"{name}: after even / odd columns {np.mean(even):.2f} / {np.mean(odd):.2f}")
