"""The causal 3D autoencoder on the `tiny` config: shapes, causality, streaming, SE, training."""

import json

import numpy as np
import pytest
import torch

from diffusable.training import train_ae
from diffusable.models.pca_residual_vae import CausalVAE, get_config, inference_form
from diffusable.models.scale_equivariance import SE_MODES, available_modes, se_pair
from diffusable.evaluation.spectrum import (
    hf_share,
    lowpass,
    spectrum,
    standardised_hf_share,
    zigzag_order,
)
from perturb import perturbed_model
from toy_data import make_toy_dataset


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return CausalVAE(get_config("tiny")).eval()


def perturbed(cfg, seed=1):
    """A model of cfg whose every layer matters (the zero-initialised ones too)."""
    return perturbed_model(lambda: CausalVAE(cfg), seed)


def test_the_refinement_stage_is_causal_within_the_declared_context():
    model = perturbed(get_config("tiny", refine_width=16))
    ctx = model.cfg.decoder_context_latents  # 1 decoder + 2 refine blocks -> 4 latent frames
    assert ctx == 4
    z = torch.randn(1, 4, 7, 4, 4)
    j = 1
    changed = z.clone()
    changed[:, :, j] = torch.randn(1, 4, 4, 4)
    with torch.no_grad():
        a, b = model.decode(z), model.decode(changed)
    video_frame = lambda i: max(0, 4 * i - 3)  # noqa: E731  first video frame of latent i
    assert torch.equal(a[:, :, : video_frame(j)], b[:, :, : video_frame(j)])
    last = j + ctx - 1  # the last latent frame whose field reaches back to j
    assert not torch.allclose(a[:, :, video_frame(last)], b[:, :, video_frame(last)])
    assert torch.equal(a[:, :, video_frame(last + 1) :], b[:, :, video_frame(last + 1) :])


@pytest.mark.parametrize(
    "decoder_kernel, refine_width, kernel_t", [(1, 0, 2), (3, 0, 2), (1, 16, 2), (1, 0, 3)]
)
def test_the_inference_form_computes_the_same_function(decoder_kernel, refine_width, kernel_t):
    """What the ONNX graphs run (patch convs fused, the encoder on time-major frames with frame
    0's taps summed, norm weights and frame 0's marker folded into convs, causal convs folded to
    2-D) against the model, on weights where every layer matters (the norms' and the marker
    too), one-pass and streamed in chunks of 1 and 2 latents, frame 0 alone, encoder and
    decoder; 3 clips, so that time-major rows of different clips cannot pass for each other."""
    cfg = get_config(
        "tiny", decoder_linear_kernel=decoder_kernel, refine_width=refine_width, kernel_t=kernel_t
    )
    model = perturbed(cfg)
    fast = inference_form(model)
    assert fast.encoder.patch_group is not None and model.encoder.patch_group is None
    assert all(m.weight2d is not None for m in fast.causal_convs(fast))
    video = torch.rand(3, 3, 13, 32, 40) * 2 - 1
    with torch.no_grad():
        want = model.encode_scaled(video)
        assert (fast.encode_scaled(video) - want).abs().max() <= 1e-5
        assert (fast.encode_scaled(video[:, :, :1]) - want[:, :, :1]).abs().max() <= 1e-5
        for chunk in (1, 2):
            assert (fast.encode_chunked(video, chunk) - want).abs().max() <= 1e-5
        assert (fast.decode_scaled(want) - model.decode_scaled(want)).abs().max() <= 1e-5
    # the copies hold their own weights: the model's state dict is unchanged in its keys
    assert set(model.state_dict()) == set(CausalVAE(model.cfg).state_dict())


def test_a_finetune_may_widen_the_decoder_linear_map_without_changing_the_function():
    base = perturbed(get_config("tiny"), seed=2)
    wide = CausalVAE(get_config("tiny", decoder_linear_kernel=3)).eval()
    wide.load_from(base)
    assert wide.decoder.linear.group.weight.shape[-2:] == (3, 3)
    video = torch.rand(2, 3, 9, 32, 32) * 2 - 1
    with torch.no_grad():
        assert (wide(video)[0] - base(video)[0]).abs().max() <= 1e-5
    # ... or add a refinement stage (zero output at first) ...
    refined = CausalVAE(get_config("tiny", refine_width=16)).eval()
    refined.load_from(base)
    with torch.no_grad():
        assert (refined(video)[0] - base(video)[0]).abs().max() <= 1e-5
    # ... and never narrow it, drop a stage, or change anything else.
    with pytest.raises(ValueError, match="decoder linear kernel"):
        base.load_from(wide)
    with pytest.raises(ValueError, match="refine width"):
        base.load_from(refined)
    with pytest.raises(ValueError, match="another config"):
        CausalVAE(get_config("tiny", decoder_width=48)).load_from(base)


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"decoder_linear_kernel": 2}, "odd number"),
        ({"decoder_linear_kernel": 0}, "odd number"),
        ({"refine_width": -1}, "refine_width must be >= 0"),
        ({"refine_width": 8, "refine_blocks": 0}, "refine_blocks >= 1"),
    ],
)
def test_bad_decoder_stage_settings_are_refused_by_the_config(bad, match):
    with pytest.raises(ValueError, match=match):
        get_config("tiny", **bad)


@pytest.mark.parametrize("mode", list(SE_MODES))
def test_se_downsampling_keeps_the_frame_rule(vae, mode):
    video = torch.rand(2, 3, 17, 64, 64) * 2 - 1
    with torch.no_grad():
        z = vae.encode(video)[0]  # (2, 4, 5, 8, 8)
        z_small, video_small = se_pair(z, video, mode)
        decoded = vae.decode(z_small)
    fs, ft = SE_MODES[mode]
    assert z_small.shape == (2, 4, 1 + 4 // ft, 8 // fs, 8 // fs)
    assert decoded.shape == video_small.shape == (2, 3, 1 + 16 // ft, 64 // fs, 64 // fs)
    # Frame 0 stays frame 0 (an image), in the latent and in the video.
    assert torch.allclose(z_small[:, :, 0], torch.nn.functional.avg_pool2d(z[:, :, 0], fs))


def test_se_modes_that_do_not_fit_are_not_drawn():
    assert available_modes(5, 8, 8) == ["s2", "s4", "t2", "s2t2"]
    assert available_modes(2, 8, 8) == ["s2", "s4"]  # 1 + 1 latent frames cannot halve
    assert available_modes(5, 2, 2) == ["s2", "t2", "s2t2"]


def test_dct_spectrum_and_lowpass():
    assert sorted(zigzag_order()) == list(range(64))
    assert zigzag_order()[:4] == [0, 1, 8, 16]
    smooth = torch.linspace(0, 1, 16).repeat(1, 1, 1, 16, 1)  # a ramp: low frequencies only
    noise = torch.randn(1, 1, 1, 16, 16)
    assert hf_share(spectrum(smooth)) < 0.05 < hf_share(spectrum(noise))
    assert torch.allclose(lowpass(smooth), smooth, atol=1e-2)
    assert hf_share(spectrum(lowpass(noise))) < 1e-12


def test_standardised_hf_share_weighs_every_channel_alike():
    g = torch.Generator().manual_seed(0)
    ramp = torch.linspace(-1, 1, 8).repeat(4, 1, 3, 8, 1)  # (4, 1, 3, 8, 8): smooth
    white = torch.randn(4, 1, 3, 8, 8, generator=g)
    z = torch.cat([100 * ramp, 0.01 * white], dim=1)  # a loud smooth and a quiet white channel
    # variance-weighted, the loud channel is all there is; standardised, each counts half
    assert hf_share(spectrum(z)) < 1e-3
    both = standardised_hf_share(z)
    assert abs(both - standardised_hf_share(white) / 2) < 0.02
    # and no channel's scale changes it
    assert abs(standardised_hf_share(torch.cat([ramp, 50 * white], dim=1)) - both) < 1e-6


# --- training -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def toy_dataset(tmp_path_factory):
    return make_toy_dataset(tmp_path_factory.mktemp("toy"))


def _train(out, data, variant, *extra):
    args = [
        "--config",
        "tiny",
        "--variant",
        variant,
        "--out",
        str(out),
        "--data",
        str(data),
        "--threads",
        "1",
        "--steps",
        "6",
        "--eval-every",
        "4",
        "--ckpt-every",
        "100",
        *extra,
    ]
    assert train_ae.main(args) == 0
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


def _losses(events):
    return [(e["step"], e["loss"], e["loss_rec"]) for e in events if e["type"] == "train"]


def test_resume_continues_the_same_loss_trajectory(tmp_path, toy_dataset):
    straight = _train(tmp_path / "straight", toy_dataset, "se")
    _train(tmp_path / "split", toy_dataset, "se", "--stop-after", "3")
    resumed = _train(tmp_path / "split", toy_dataset, "se")
    assert [e["status"] for e in resumed if e["type"] == "status"] == [
        "started",
        "resumed",
        "completed",
    ]
    a, b = _losses(straight), _losses(resumed)
    assert [s for s, *_ in a] == [s for s, *_ in b] == [1, 2, 3, 4, 5, 6]
    assert np.allclose([x[1:] for x in a], [x[1:] for x in b], rtol=1e-6, atol=0)


def test_baseline_and_se_differ_only_in_the_se_term(tmp_path, toy_dataset):
    base = _train(tmp_path / "base", toy_dataset, "baseline", "--steps", "1")
    se = _train(tmp_path / "se", toy_dataset, "se", "--steps", "1")
    cb = next(e for e in base if e["type"] == "config")
    cs = next(e for e in se if e["type"] == "config")
    assert cb["train"].pop("se_weight") == 0.0 and cs["train"].pop("se_weight") == 0.25
    assert cb["variant"] == "baseline" and cs["variant"] == "se"
    for key in ("model", "train", "classes", "train_clips", "parameters"):
        assert cb[key] == cs[key]
    tb = next(e for e in base if e["type"] == "train")
    ts = next(e for e in se if e["type"] == "train")
    # Same batch, same noise, same init: the shared terms are equal at the first step ...
    assert tb["loss_rec"] == ts["loss_rec"] and tb["loss_kl"] == ts["loss_kl"]
    assert "loss_se" not in tb and ts["loss_se"] > 0
    # ... and the SE run's loss is the baseline's plus 0.25 x the SE term.
    assert ts["loss"] == pytest.approx(tb["loss"] + 0.25 * ts["loss_se"], rel=1e-6)


def test_events_record_validation_and_checkpoints(tmp_path, toy_dataset):
    events = _train(tmp_path / "run", toy_dataset, "se")
    types = {e["type"] for e in events}
    assert {"config", "status", "train", "val", "checkpoint"} <= types
    val = [e for e in events if e["type"] == "val"]
    assert [e["step"] for e in val] == [4, 6]
    assert all(0 < e["psnr"] < 100 and -1 <= e["ssim"] <= 1 for e in val)
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
    assert all("steps_per_s" in e for e in events if e["type"] == "train")


def test_unusable_data_gives_one_readable_line(tmp_path, capsys):
    code = train_ae.main(
        [
            "--config",
            "tiny",
            "--variant",
            "se",
            "--out",
            str(tmp_path / "r"),
            "--data",
            str(tmp_path / "missing"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dataset.json" in err[0]


def test_gradient_loss_sees_a_two_pixel_pattern_and_not_an_offset():
    from diffusable.training.losses import gradient_loss

    target = torch.rand(2, 3, 5, 16, 16)
    assert float(gradient_loss(target + 0.3, target)) == pytest.approx(0.0, abs=1e-6)
    stripes = (torch.arange(16) % 2).float() * 0.1  # alternating columns, amplitude 0.1
    assert float(gradient_loss(target + stripes, target)) == pytest.approx(0.1, rel=1e-5)


def test_a_decoder_fine_tune_keeps_the_latents_exactly(tmp_path, toy_dataset):
    from diffusable.models.checkpoint import load_autoencoder

    base = tmp_path / "base"
    flags = ["--config", "conv-tiny", "--data", str(toy_dataset), "--threads", "1"]
    assert train_ae.main(flags + ["--variant", "se", "--out", str(base), "--steps", "3"]) == 0
    init = base / "checkpoints" / "last.pt"
    dec = tmp_path / "dec"
    args = ["--variant", "se", "--out", str(dec), "--init", str(init), "--steps", "4"]
    args += ["--train-encoder", "False", "--grad-weight", "1.0", "--lr", "1e-2"]
    assert train_ae.main(flags + args) == 0
    before, meta = load_autoencoder(init)
    after, dec_meta = load_autoencoder(dec / "checkpoints" / "last.pt")
    # It records whose latents it keeps, so a bundle of it takes that run's denoiser.
    assert dec_meta["latents_from"] == {"run_id": meta["run_id"], "step": 3}
    assert load_autoencoder(dec / "checkpoints" / "ema-fp16.pt")[1]["latents_from"] == {
        "run_id": meta["run_id"],
        "step": 3,
    }
    b, a = before.state_dict(), after.state_dict()
    frozen = [k for k in b if not k.startswith("decoder.")]
    assert "latent_scale" in frozen and any(k.startswith("encoder.") for k in frozen)
    assert [k for k in frozen if not torch.equal(b[k], a[k])] == []
    assert any(not torch.equal(b[k], a[k]) for k in b if k.startswith("decoder."))
    # Exported into a bundle that holds the init's denoiser, it keeps that denoiser; the init's
    # own pre-train (other latents) replaces the AE and removes the denoiser.
    from diffusable.export import ae_bundle

    bundle = tmp_path / "bundle"
    assert ae_bundle.main(["--ckpt", str(init), "--out", str(bundle)]) == 0
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["onnx"].update(denoiser="denoiser.onnx", denoiser_weights="fp16")
    manifest.update(denoiser_config={"name": "x"}, sampler={"steps": 8}, null_class=2)
    manifest["classes"] = ["a", "b"]
    manifest["runs"]["diffusion"] = {"id": "dit", "step": 9}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    (bundle / "denoiser.onnx").write_bytes(b"the denoiser")
    assert (
        ae_bundle.main(["--ckpt", str(dec / "checkpoints" / "last.pt"), "--out", str(bundle)]) == 0
    )
    kept = json.loads((bundle / "manifest.json").read_text())
    assert kept["runs"]["autoencoder"]["id"] == "dec"
    assert kept["runs"]["autoencoder"]["latents_from"] == dec_meta["latents_from"]
    assert kept["runs"]["diffusion"] == {"id": "dit", "step": 9} and kept["null_class"] == 2
    assert kept["latent"] == manifest["latent"] and kept["classes"] == ["a", "b"]
    assert (bundle / "denoiser.onnx").read_bytes() == b"the denoiser"
    assert "denoiser.onnx" in kept["files"]
    other = tmp_path / "other"
    assert train_ae.main(flags + ["--variant", "se", "--out", str(other), "--steps", "1"]) == 0
    assert (
        ae_bundle.main(["--ckpt", str(other / "checkpoints" / "last.pt"), "--out", str(bundle)])
        == 0
    )
    replaced = json.loads((bundle / "manifest.json").read_text())
    assert "denoiser" not in replaced["onnx"] and "diffusion" not in replaced["runs"]
    assert not (bundle / "denoiser.onnx").exists()

    train = [e for e in _events_of(dec) if e["type"] == "train"]
    assert all(e["loss_grad"] > 0 for e in train)
    # Without a checkpoint to start from there are no latents to keep: one line, exit 2.
    code = train_ae.main(flags + ["--variant", "se", "--out", str(tmp_path / "x")] + args[6:])
    assert code == 2


def _events_of(run):
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]


def test_the_step_profile_is_the_grid_ratio_phase_by_phase():
    from diffusable.training.losses import step_profile, step_profile_loss
    from diffusable.evaluation.metrics import grid_ratio, grid_steps

    x = torch.rand(2, 3, 5, 32, 32)
    y = x.clone()
    y[..., ::8] += 0.5  # a column every 8 pixels: the steps into and out of it grow
    for v in (x, y):
        p = step_profile(v)  # (B, 2, 8)
        assert p.shape == (2, 2, 8)
        ratio = float(p[:, :, 0].mean() / p[:, :, 1:].mean())  # equal counts per clip
        assert ratio == pytest.approx(grid_ratio(grid_steps(v)), rel=1e-5)
    assert grid_ratio(grid_steps(y)) > 1.2
    assert float(step_profile_loss(x, x)) == 0.0 and float(step_profile_loss(y, x)) > 0.05


def test_latent_noise_perturbs_only_the_decoded_latent(tmp_path, toy_dataset):
    flags = ["--config", "conv-tiny", "--data", str(toy_dataset), "--threads", "1"]
    base = tmp_path / "base"
    assert train_ae.main(flags + ["--variant", "se", "--out", str(base), "--steps", "1"]) == 0
    init = str(base / "checkpoints" / "last.pt")
    runs = {}
    for name, extra in (("clean", []), ("noisy", ["--latent-noise", "0.5"])):
        out = tmp_path / name
        args = ["--variant", "se", "--out", str(out), "--init", init, "--steps", "1"]
        assert train_ae.main(flags + args + ["--train-encoder", "False"] + extra) == 0
        runs[name] = next(e for e in _events_of(out) if e["type"] == "train")
    clean, noisy = runs["clean"], runs["noisy"]
    # Same batch, posterior noise and SE mode: the KL and the SE term (decoded from the clean
    # latent) are equal; only the reconstruction, decoded from the perturbed latent, is worse.
    assert noisy["loss_kl"] == clean["loss_kl"] and noisy["se_mode"] == clean["se_mode"]
    assert noisy["loss_se"] == pytest.approx(clean["loss_se"], rel=1e-6)
    assert noisy["loss_rec"] > clean["loss_rec"]


def test_adaptive_weight_balances_the_two_gradients_at_the_last_layer():
    from diffusable.training.losses import adaptive_weight

    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 3, generator=g).requires_grad_(True)
    x = torch.randn(5, 3, generator=g)
    f = (x @ w.t()).square().mean()
    norm = float(torch.autograd.grad(f, w, retain_graph=True)[0].norm())
    # Gradients 3 df/dw and 0.5 df/dw: the weight that makes them equal is 6 (up to the 1e-4
    # that keeps a vanishing adversarial gradient from dividing by zero).
    weight = adaptive_weight(3.0 * f, 0.5 * f, w)
    assert float(weight) == pytest.approx(3 * norm / (0.5 * norm + 1e-4), rel=1e-5)
    assert float(weight) == pytest.approx(6.0, rel=1e-3)
    assert not weight.requires_grad


def test_the_discriminator_learns_first_then_joins_and_resumes(tmp_path, toy_dataset):
    flags = ["--config", "conv-tiny", "--data", str(toy_dataset), "--threads", "1"]
    base = tmp_path / "base"
    assert train_ae.main(flags + ["--variant", "baseline", "--out", str(base), "--steps", "1"]) == 0
    init = str(base / "checkpoints" / "last.pt")
    args = ["--variant", "baseline", "--init", init, "--train-encoder", "False", "--steps", "5"]
    args += ["--disc-start", "2", "--disc-weight", "0.5", "--ckpt-every", "100"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train_ae.main(flags + args + ["--out", str(straight)]) == 0
    assert train_ae.main(flags + args + ["--out", str(split), "--stop-after", "3"]) == 0
    assert train_ae.main(flags + args + ["--out", str(split)]) == 0
    train = [e for e in _events_of(straight) if e["type"] == "train"]
    assert all("loss_disc" in e for e in train)  # the discriminator learns from step 0 ...
    assert [e["step"] for e in train if "loss_adv" in e] == [3, 4, 5]  # ... its term from 2
    assert all(e["adv_weight"] > 0 for e in train if "loss_adv" in e)
    # The discriminator and its optimiser are in the checkpoint: a resumed run is the same run.
    resumed = [e for e in _events_of(split) if e["type"] == "train"]
    keys = ("loss", "loss_adv", "loss_disc")
    last = [e[k] for e in resumed[-2:] for k in keys]
    assert last == pytest.approx([e[k] for e in train[-2:] for k in keys], rel=1e-5)
    # The PCA-residual model has no adversarial training: one line, exit 2.
    pca = ["--config", "tiny", "--data", str(toy_dataset), "--threads", "1", "--steps", "1"]
    code = train_ae.main(pca + ["--variant", "baseline", "--out", str(tmp_path / "p")] + args[8:10])
    assert code == 2
