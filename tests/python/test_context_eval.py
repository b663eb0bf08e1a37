"""context_eval: image-to-video keeps the image as frame 0, extension windows continue clips."""

import json

import pytest
import torch

from diffusable import context_eval, train_ae, train_diffusion
from diffusable.context_eval import real_step_psnr
from test_autoencoder import make_toy_dataset


def test_real_step_psnr_of_a_still_clip_is_the_cap_and_of_noise_is_low():
    still = torch.zeros(2, 3, 5, 8, 8)
    assert torch.allclose(real_step_psnr(still), torch.full((2,), 100.0))
    noisy = torch.rand(2, 3, 5, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert (real_step_psnr(noisy) < 10).all()


@pytest.mark.parametrize("chain", [2])
def test_context_eval_measures_both_modes_and_draws_the_sheets(tmp_path, chain):
    data = make_toy_dataset(tmp_path / "toy")
    flags = ["--config", "tiny", "--data", str(data), "--threads", "1"]
    ae = tmp_path / "ae"
    assert train_ae.main(flags + ["--variant", "baseline", "--out", str(ae), "--steps", "2"]) == 0
    dit = tmp_path / "dit"
    assert (
        train_diffusion.main(flags + ["--ae", str(ae), "--out", str(dit), "--context-prob", "0.5"])
        == 0
    )
    out = tmp_path / "context"
    argv = ["--dit", str(dit), "--out", str(out), "--data", str(data), "--threads", "1"]
    argv += ["--ae", str(ae / "checkpoints" / "last.pt")]
    argv += ["--steps", "2", "--chain", str(chain), "--classifier-steps", "10"]
    assert context_eval.main(argv) == 0
    record = json.loads((out / "context.json").read_text())
    run = record["runs"]["dit"]
    for mode in ("trained", "replace"):
        i2v, ext = run[mode]["image_to_video"], run[mode]["extension"]
        # frame 0 of image-to-video is the decoder's picture of the image latent, whatever mode
        assert i2v["frame0_vs_reconstruction_psnr_min"] >= 40
        # toy clips are 9 frames (3 latents): 2 given (5 frames), 1 generated (4 new frames)
        assert ext["context_frames"] == 5 and ext["new_frames"] == 4
        assert len(ext["class_score_per_link"]) == chain
        assert 0 <= ext["class_score"] <= 1 and ext["seam_psnr"] > 0
        assert (out / f"extension-dit-{mode}.png").read_bytes()[:4] == b"\x89PNG"
    assert record["classifier"]["key"] and "| dit |" in (out / "context.md").read_text()
    bad = argv[:-6] + ["--steps", "2", "--context-latents", "3", "--classifier-steps", "10"]
    assert context_eval.main(bad) == 2  # 3 given latents leave nothing to generate
