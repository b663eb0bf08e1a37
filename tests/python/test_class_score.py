"""class_score: generated files are decoded by ffmpeg and scored against their intended labels."""

import json
import subprocess

import numpy as np
import pytest
import torch
from diffusable.experiments.class_score import score_videos
from diffusable.evaluation.classifier import ClassifierConfig
from diffusable.data import procedural
from diffusable.data.clips import ClipDataset, FfmpegError

SPEC = dict(seed=5, size=32, frames=9, fps=8, train_per_class=2, val_per_class=1)


def _write_mp4(path, clip, pix_fmt=None):  # clip: (T, H, W, 3) uint8; lossless in pix_fmt
    t, h, w, _ = clip.shape
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24"]
    cmd += ["-s", f"{w}x{h}", "-r", "8", "-i", "-", "-c:v", "libx264", "-qp", "0"]
    cmd += ["-pix_fmt", pix_fmt] if pix_fmt else []
    subprocess.run(cmd + [str(path)], input=clip.tobytes(), check=True)


def test_scores_decoded_files_and_rejects_a_broken_one(tmp_path):
    root = procedural.ensure_procedural(tmp_path / "cache", **SPEC)
    val = ClipDataset(root, "val")
    folder = tmp_path / "samples"
    folder.mkdir()
    items = []
    video, _ = val.batch([0, 1, 2])  # (3, 3, T, H, W) in [-1, 1]
    clips = ((video.permute(0, 2, 3, 4, 1) + 1) * 127.5).round().byte().numpy()
    for i, clip in enumerate(clips):
        items.append({"file": f"{i}.mp4", "label": val.classes[int(val.labels[i])]})
        _write_mp4(folder / f"{i}.mp4", clip)
    listing = {"model": "m", "resolution": 32, "frames": 9, "items": items}
    (folder / "samples.json").write_text(json.dumps(listing))

    sheet = tmp_path / "sheet.png"
    result = score_videos(
        folder, root, ClassifierConfig(steps=2, batch_size=4, train_per_class=0), sheet
    )
    assert result["videos_decoded"] == 3
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and sheet.stat().st_size > 5000
    assert 0.0 <= result["class_score"] <= 1.0 and result["grid_ratio"] > 0
    assert result["chance"] == pytest.approx(1 / len(val.classes))

    (folder / "1.mp4").write_bytes(b"not a video")
    with pytest.raises(FfmpegError):
        score_videos(folder, root, ClassifierConfig(steps=2, batch_size=4, train_per_class=0))


def test_reconstruction_scores_are_per_class_and_average_to_the_score(tmp_path):
    """`class_score recon`: the classifier's score of an AE's val reconstructions, per class,
    the ceiling a denoiser on that AE's latents can reach."""
    from diffusable.training import train_ae
    from diffusable.experiments.class_score import score_reconstructions
    from toy_data import make_toy_dataset

    data = make_toy_dataset(tmp_path / "toy")
    ae = tmp_path / "ae"
    flags = ["--config", "tiny", "--variant", "baseline", "--data", str(data), "--threads", "1"]
    assert train_ae.main(flags + ["--out", str(ae), "--steps", "2"]) == 0
    cfg = ClassifierConfig(steps=2, batch_size=4, train_per_class=0)
    result = score_reconstructions(ae / "checkpoints" / "last.pt", data, cfg)
    val = ClipDataset(data, "val")
    assert list(result["per_class"]) == val.classes and result["val_clips"] == len(val)
    counts = [int((val.labels == c).sum()) for c in range(len(val.classes))]
    weighted = sum(n * s for n, s in zip(counts, result["per_class"].values())) / sum(counts)
    assert result["class_score"] == pytest.approx(weighted)
    assert 0.0 <= result["class_score_real"] <= 1.0

    # --linear: the same clips through the linear code of the checkpoint's latent grid
    linear = score_reconstructions(ae / "checkpoints" / "last.pt", data, cfg, linear=True)
    assert linear["autoencoder"]["run_id"] == "linear code (4 ch)", linear["autoencoder"]
    assert linear["class_score_real"] == result["class_score_real"]
    assert list(linear["per_class"]) == val.classes


def test_served_files_are_decoded_with_their_chroma_interpolated(tmp_path):
    """A 4:2:0 file is read back as a player shows it: the chroma of a colour ramp changes at
    every pixel, not once every two (swscale's default), which would add a 2-pixel pattern."""
    from diffusable.experiments.class_score import decode_video

    x = np.arange(32) * 8  # (W,) a red-to-blue ramp across the frame
    frame = np.zeros((32, 32, 3), np.uint8)
    frame[..., 0], frame[..., 2] = x, 255 - x
    clip = np.stack([frame] * 3)  # (T, H, W, 3)
    path = tmp_path / "ramp.mp4"
    _write_mp4(path, clip, "yuv420p")
    video = decode_video(path, 32, 3)  # (3, T, H, W) in [-1, 1]
    red = (video[0, 0] + 1) * 127.5  # (H, W)
    steps = (red[:, 1:] - red[:, :-1]).abs().mean(0)  # (W - 1,) mean |step| at each column
    even, odd = float(steps[0::2].mean()), float(steps[1::2].mean())
    assert 0.8 < even / odd < 1.25, (even, odd)  # replicated chroma: about 1.3 against 14.6
    assert float((red - torch.from_numpy(frame[..., 0]).float()).abs().mean()) < 1.5
