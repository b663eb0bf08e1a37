"""context_eval: image-to-video keeps the image as frame 0, extension windows continue clips."""

import json

import pytest
import torch

from diffusable.experiments import context_eval
from diffusable.training import train_ae, train_diffusion
from diffusable.evaluation.classifier import ClassifierConfig, get_classifier, predict, scores_of
from diffusable.experiments.context_eval import real_step_psnr
from diffusable.data.clips import ClipDataset
from toy_data import make_toy_dataset


def test_real_step_psnr_of_a_still_clip_is_the_cap_and_of_noise_is_low():
    still = torch.zeros(2, 3, 5, 8, 8)
    assert torch.allclose(real_step_psnr(still), torch.full((2,), 100.0))
    noisy = torch.rand(2, 3, 5, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert (real_step_psnr(noisy) < 10).all()


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A toy dataset, a 2-step autoencoder and an 8-step context-trained denoiser on it."""
    tmp = tmp_path_factory.mktemp("context")
    data = make_toy_dataset(tmp / "toy")
    flags = ["--config", "tiny", "--data", str(data), "--threads", "1"]
    ae = tmp / "ae"
    assert train_ae.main(flags + ["--variant", "baseline", "--out", str(ae), "--steps", "2"]) == 0
    dit = tmp / "dit"
    assert (
        train_diffusion.main(flags + ["--ae", str(ae), "--out", str(dit), "--context-prob", "0.5"])
        == 0
    )
    return data, ae, dit


@pytest.mark.parametrize("chain", [2])
def test_context_eval_measures_both_modes_and_draws_the_sheets(tmp_path, toy_run, chain):
    data, ae, dit = toy_run
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
    # the seam a perfect denoiser would leave: the clip's own next latent through the decoder
    real = run["real"]
    assert 0 < real["ae_seam_psnr"] <= 100
    assert real["ae_seam_minus_real_step_db"] == pytest.approx(
        real["ae_seam_psnr"] - real["step_psnr"], abs=1e-3
    )
    # the extension's ceiling: the same classifier on as many real frames, the clips' last ones
    val = ClipDataset(data, "val")
    video, labels = val.batch(list(range(len(val))))
    classifier, info = get_classifier(data, ClassifierConfig(steps=10))
    predicted = predict(classifier, video[:, :, -4:], info["config"]["size"])
    expected = scores_of(predicted, labels, val.classes)["mean"]
    assert real["continuation_frames"] == 4
    assert real["continuation_class_score"] == pytest.approx(expected)
    assert 0 <= real["reconstruction_continuation_class_score"] <= 1
    assert record["classifier"]["key"] and "| dit |" in (out / "context.md").read_text()
    assert "the last 4 frames of the real clips" in (out / "context.md").read_text()
    assert "a perfect denoiser's" in (out / "context.md").read_text()
    bad = argv[:-6] + ["--steps", "2", "--context-latents", "3", "--classifier-steps", "10"]
    assert context_eval.main(bad) == 2  # 3 given latents leave nothing to generate


def test_sampler_sweep_tabulates_every_setting_and_export_takes_the_choice(tmp_path, toy_run):
    from diffusable.experiments import sampler_sweep
    from diffusable.export.denoiser_bundle import sampler_defaults

    data, ae, dit = toy_run
    out = tmp_path / "sweep.json"
    argv = ["--dit", str(dit), "--ae", str(ae / "checkpoints" / "last.pt"), "--data", str(data)]
    argv += ["--guidance", "1", "3", "--steps", "2", "--per-class", "2", "--json", str(out)]
    argv += ["--classifier-steps", "10", "--interval", "0,1", "0.6,1"]
    sheet = tmp_path / "sheets" / "sweep.png"
    assert sampler_sweep.main(argv + ["--threads", "1", "--sheet", str(sheet)]) == 0
    rows = json.loads(out.read_text())["rows"]
    # one contact sheet per setting, in the table's order
    assert sorted(p.name for p in sheet.parent.iterdir()) == [f"sweep-{i}.png" for i in range(1, 5)]
    assert [(r["guidance"], r["guidance_interval"], r["steps"], r["method"]) for r in rows] == [
        (1.0, [0.0, 1.0], 2, "euler"),
        (1.0, [0.6, 1.0], 2, "euler"),
        (3.0, [0.0, 1.0], 2, "euler"),
        (3.0, [0.6, 1.0], 2, "euler"),
    ]
    assert all(0 <= r["class_score"] <= 1 and r["fd_cls3d"] >= 0 for r in rows)
    metrics = [(r["class_score"], r["fd_cls3d"]) for r in rows]
    assert metrics[0] != metrics[2]  # guidance changes the samples
    assert metrics[0] == metrics[1]  # without guidance its interval changes nothing
    assert metrics[2] != metrics[3]  # at 2 steps (t = 1, 0.5) the interval drops one guided step
    for bad in (["--interval", "0.5"], ["--interval", "0.8,0.2"], ["--shift", "0"]):
        assert sampler_sweep.main(argv[:-3] + bad) == 2
    (tmp_path / "folder.png").mkdir()
    for bad in ("sheet.jpg", "folder.png"):  # not a .png; a folder
        assert sampler_sweep.main(argv + ["--sheet", str(tmp_path / bad)]) == 2
    train = {"sample_method": "euler", "sample_steps": 16, "guidance": 2.0}
    assert sampler_defaults(train)["guidance"] == 2.0
    chosen = sampler_defaults(train, {"guidance": 3.0, "steps": None, "method": "heun"})
    assert (chosen["guidance"], chosen["steps"], chosen["method"]) == (3.0, 16, "heun")
