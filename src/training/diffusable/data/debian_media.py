"""Real photographs and camera videos that Debian packages ship, fetched into the cache.

    PYTHONPATH=src/training python3 -m diffusable.data.debian_media   # fetch all, list them

Nothing here is committed: each package is downloaded with `apt-get download` and unpacked with
`dpkg -x` into `<cache>/debian/<package>/`, once. Photographs (desktop wallpapers) widen the
procedural dataset's photo pool; the videos are the real-video eval set of `ae_eval` and are
never used for training.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .. import paths

# Packages and what to take from each. Videos: one file per distinct recording (the forensics
# package ships one of its movies in three containers; the .mp4 is kept).
PHOTO_PACKAGES: Tuple[str, ...] = ("ukui-wallpapers", "lomiri-wallpapers")
VIDEO_PACKAGES: Tuple[str, ...] = ("python3-mecavideo", "forensics-samples-files", "kphotoalbum")
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
VIDEO_SUFFIXES = (".mp4", ".avi", ".ogv", ".webm", ".mkv", ".mov")
SKIP_VIDEOS = ("movie-hello.ogg", "movie-hello.avi")


def media_root(cache_root: Optional[Path] = None) -> Path:
    return Path(cache_root or paths.cache_root()) / "debian"


def fetch_package(package: str, cache_root: Optional[Path] = None) -> Optional[Path]:
    """<cache>/debian/<package>/ with the package's files, or None if it cannot be fetched."""
    root = media_root(cache_root)
    dest = root / package
    if (dest / ".complete").is_file():
        return dest
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        return None
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{package}.tmp-") as tmp:
        got = subprocess.run(
            ["apt-get", "download", package], cwd=tmp, capture_output=True, text=True
        )
        debs = list(Path(tmp).glob("*.deb"))
        if got.returncode != 0 or not debs:
            return None
        unpacked = Path(tmp) / "x"
        subprocess.run(["dpkg", "-x", str(debs[0]), str(unpacked)], check=True)
        (unpacked / ".complete").write_text(debs[0].name + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.rename(unpacked, dest)
    return dest


def _files(folder: Path, suffixes: Sequence[str]) -> List[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)


def photos(cache_root: Optional[Path] = None, fetch: bool = True) -> List[Path]:
    """Wallpaper photographs, sorted; empty when the packages cannot be had."""
    found: List[Path] = []
    for package in PHOTO_PACKAGES:
        folder = media_root(cache_root) / package
        if fetch:
            folder = fetch_package(package, cache_root) or folder
        if (folder / ".complete").is_file():
            found += _files(folder, PHOTO_SUFFIXES)
    return found


def real_videos(cache_root: Optional[Path] = None) -> Dict[str, Path]:
    """name -> path of every real-camera video of VIDEO_PACKAGES (fetched on first use)."""
    found: Dict[str, Path] = {}
    missing = []
    for package in VIDEO_PACKAGES:
        folder = fetch_package(package, cache_root)
        if folder is None:
            missing.append(package)
            continue
        for path in _files(folder, VIDEO_SUFFIXES):
            if path.name not in SKIP_VIDEOS:
                found[f"{package}/{path.stem}"] = path
    if missing:
        raise FileNotFoundError(
            f"could not fetch the real-video packages {', '.join(missing)} "
            "(apt-get download needs Debian's archive)"
        )
    return found


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Fetch Debian's photographs and real videos.")
    ap.add_argument("--cache", help="cache root (default: $DIFFUSABLE_CACHE or <repo>/.cache)")
    args = ap.parse_args(argv)
    cache = Path(args.cache) if args.cache else None
    try:
        videos = real_videos(cache)
    except FileNotFoundError as err:
        print(f"debian_media: {err}", file=sys.stderr)
        return 1
    for name in videos:
        print("video", name)
    for path in photos(cache):
        print("photo", path.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
