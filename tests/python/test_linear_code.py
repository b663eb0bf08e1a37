"""The linear code and the protocol: PCA init = the linear code at step 0, identical draws
across the three fine-tunes, the benchmark's references, and the GPU recipe's CPU smoke run."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusable.experiments import ae_protocol
from diffusable.training import train_ae
from diffusable.models.pca_residual_vae import CausalVAE, get_config
from diffusable.models.linear_code import (
    block_average,
    fit_linear_code,
    init_from_linear_code,
    linear_code_model,
)
from diffusable.evaluation.metrics import psnr
from diffusable.models.scale_equivariance import VARIANT_MODES

from toy_data import make_toy_dataset

ROOT = Path(__file__).resolve().parents[2]


def smooth_videos(n, frames=9, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, frames, size // 4, size // 4, generator=g)
    return (
        torch.nn.functional.interpolate(coarse, size=(frames, size, size), mode="trilinear") * 2 - 1
    )


def numpy_linear_code(train, test, c):
    """An independent PCA reconstruction: frame 0 as 8x8x3 blocks, later 4-frame groups as
    4x8x8x3 blocks, via numpy's SVD (no code shared with linear_code.py)."""

    def blocks(v, frames):  # (N, 3, F, H, W) -> (N, F/fr, H/8, W/8, 3*fr*64) groups
        n, ch, f, h, w = v.shape
        x = v.reshape(n, ch, f // frames, frames, h // 8, 8, w // 8, 8)
        return x.transpose(0, 2, 4, 6, 1, 3, 5, 7).reshape(n, f // frames, h // 8, w // 8, -1)

    def fit(x):
        mu = x.mean(0)
        _, _, vt = np.linalg.svd(x - mu, full_matrices=False)
        return mu, vt[:c].T

    out = np.empty_like(test)
    for sl, fr in ((slice(0, 1), 1), (slice(1, None), 4)):
        tr = blocks(train[:, :, sl], fr).reshape(-1, 3 * fr * 64)
        mu, u = fit(tr)
        te = blocks(test[:, :, sl], fr)
        rec = (te - mu) @ u @ u.T + mu
        n, t, hb, wb, _ = rec.shape
        rec = rec.reshape(n, t, hb, wb, 3, fr, 8, 8).transpose(0, 4, 1, 5, 2, 6, 3, 7)
        out[:, :, sl] = rec.reshape(n, 3, t * fr, hb * 8, wb * 8)
    return np.clip(out, -1, 1)


@pytest.mark.parametrize("decoder_kernel", [1, 3])
def test_pca_init_is_the_linear_code_at_step_zero(decoder_kernel):
    cfg = get_config("tiny", decoder_linear_kernel=decoder_kernel)
    train, test = smooth_videos(24, seed=0), smooth_videos(6, seed=1)
    fit = fit_linear_code(cfg, [train[:12], train[12:]])
    torch.manual_seed(0)
    vae = init_from_linear_code(CausalVAE(cfg), fit).eval()
    with torch.no_grad():
        ours = psnr(vae.decode(vae.encode(test)[0]).clamp(-1, 1), test).mean().item()
    ref = numpy_linear_code(train.double().numpy(), test.double().numpy(), cfg.latent_channels)
    theirs = psnr(torch.from_numpy(ref).float(), test).mean().item()
    assert abs(ours - theirs) < 0.1, (ours, theirs)
    # ... and a lossy one (4 channels for 768 numbers): short of the 12-number block average.
    assert 10 < ours < psnr(block_average(test), test).mean().item()


def test_linear_code_model_is_causal_and_streams():
    cfg = get_config("tiny")
    vae = linear_code_model(cfg, fit_linear_code(cfg, [smooth_videos(8)]))
    video = smooth_videos(1, frames=17)
    with torch.no_grad():
        whole = vae.encode_scaled(video)
        chunked = vae.encode_chunked(video, chunk_latents=1)
    assert (whole - chunked).abs().max() < 1e-5


def test_the_three_finetunes_draw_the_same_batches_and_noise():
    cfg = train_ae.TRAIN_PRESETS["tiny-finetune"]
    shape = (cfg.batch_size, 4, 3, 4, 4)
    for step in (0, 1, 7):
        draws = {v: train_ae.step_draws(cfg, step, 0, 10, shape, v) for v in VARIANT_MODES}
        base = draws["baseline"]
        assert base.se_mode is None
        for v, d in draws.items():
            assert d.indices == base.indices
            assert torch.equal(d.noise, base.noise) and torch.equal(d.flips, base.flips)
            assert v == "baseline" or d.se_mode in VARIANT_MODES[v]
    spatial = [train_ae.step_draws(cfg, s, 0, 10, shape, "se-spatial").se_mode for s in range(40)]
    both = [train_ae.step_draws(cfg, s, 0, 10, shape, "se").se_mode for s in range(40)]
    assert set(spatial) == {"s2", "s4"} and {"t2", "s2t2"} <= set(both)


@pytest.fixture(scope="module")
def protocol(tmp_path_factory):
    root = tmp_path_factory.mktemp("protocol")
    data = make_toy_dataset(root / "toy")
    out = root / "runs"
    args = ["--config", "tiny", "--out", str(out), "--data", str(data), "--threads", "1"]
    args += ["--pretrain-steps", "4", "--finetune-steps", "2", "--no-real"]
    # The fine-tunes widen the pre-train's decoder linear map (CausalVAE.load_from).
    args += ["--finetune-flags", "--decoder-linear-kernel 3"]
    assert ae_protocol.main(args) == 0
    return out


def _events(run):
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]


def test_protocol_finetunes_differ_only_in_the_se_term(protocol):
    runs = {v: _events(protocol / f"ae-tiny-{v}") for v in ("baseline", "se", "se-spatial")}
    first = {v: next(e for e in ev if e["type"] == "train") for v, ev in runs.items()}
    # Same init, batch and noise: the shared terms of the first step are equal to the bit.
    assert len({f["loss_rec"] for f in first.values()}) == 1
    assert "loss_se" not in first["baseline"]
    assert first["se"]["loss_se"] > 0 and first["se-spatial"]["loss_se"] > 0
    configs = {v: next(e for e in ev if e["type"] == "config") for v, ev in runs.items()}
    assert {c["init"]["run_id"] for c in configs.values()} == {"ae-tiny-pretrain"}
    assert configs["se-spatial"]["se_modes"] == ["s2", "s4"]
    # --finetune-flags reach the three fine-tunes only.
    assert {c["model"]["decoder_linear_kernel"] for c in configs.values()} == {3}
    pre_config = next(e for e in _events(protocol / "ae-tiny-pretrain") if e["type"] == "config")
    assert pre_config["model"]["decoder_linear_kernel"] == 1
    # The pre-train logged the linear code as its reference, on its validation clips.
    pre = _events(protocol / "ae-tiny-pretrain")
    assert next(e for e in pre if e["type"] == "reference")["name"] == "linear_code"


def test_protocol_may_start_from_a_finished_pretrain(protocol, tmp_path):
    # As committed under docs/results/runs: events and fp16 EMA weights, no last.pt.
    committed = tmp_path / "ae-tiny-pretrain"
    shutil.copytree(protocol / "ae-tiny-pretrain", committed)
    (committed / "checkpoints" / "last.pt").unlink()
    assert (committed / "checkpoints" / "ema-fp16.pt").is_file()
    other = tmp_path / "from-pretrain"
    args = ["--config", "tiny", "--out", str(other), "--threads", "1", "--skip-eval"]
    args += ["--finetune-steps", "1", "--pretrain", str(committed)]
    args += ["--data", str(protocol.parent / "toy")]
    assert ae_protocol.main(args) == 0
    assert not (other / "ae-tiny-pretrain").exists()
    config = next(e for e in _events(other / "ae-tiny-se") if e["type"] == "config")
    assert config["init"]["run_id"] == "ae-tiny-pretrain"
    # A folder that is not a finished run is refused before anything trains.
    args[args.index("--pretrain") + 1] = str(tmp_path / "missing")
    assert ae_protocol.main(args) == 2


def test_protocol_eval_reports_references_and_resumes(protocol):
    result = json.loads((protocol / "ae-eval" / "ae_eval.json").read_text())
    models = result["sets"]["procedural_val"]["models"]
    assert set(models) == {
        "pretrain",
        "baseline",
        "se",
        "se-spatial",
        "linear_code",
        "block_average_8x8",
    }
    assert all(0 < m["psnr"]["overall"] < 100 for m in models.values())
    md = (protocol / "ae-eval" / "ae_eval.md").read_text()
    assert "linear_code" in md and "**overall**" in md
    # Every stage is done: running the command again trains nothing.
    before = {p: p.stat().st_mtime for p in protocol.glob("ae-tiny-*/checkpoints/last.pt")}
    args = ["--config", "tiny", "--out", str(protocol), "--threads", "1", "--skip-eval"]
    assert ae_protocol.main(args) == 0
    assert before == {p: p.stat().st_mtime for p in before}


def test_eval_events_are_written_once_per_step(protocol, tmp_path):
    """The protocol re-evaluates its pre-train, which may be a committed run: evaluating a
    checkpoint again adds no second ae_eval line for the same step."""
    from diffusable.experiments import ae_eval

    run = tmp_path / "ae-tiny-pretrain"
    shutil.copytree(protocol / "ae-tiny-pretrain", run)
    count = lambda: sum(e["type"] == "ae_eval" for e in _events(run))  # noqa: E731
    assert count() == 1  # the protocol's own evaluation
    args = ["--out", str(tmp_path / "eval"), "--events", "--no-real", "--threads", "1"]
    args += ["--data", str(protocol.parent / "toy")]
    args += ["--ckpt", f"pretrain={run / 'checkpoints' / 'last.pt'}"]
    assert ae_eval.main(args) == 0
    assert count() == 1


def test_ae_eval_splits_psnr_by_frame_position():
    """Frame 0 (a latent frame of its own) and the later frames are scored apart: a
    reconstruction exact on frame 0 and noisy after it scores the floor's 100 dB there, the
    later frames' PSNR pools their error, and the whole clip's lies between."""
    from diffusable.evaluation.metrics import psnr
    from diffusable.experiments.ae_eval import by_position_markdown, grouped, scores

    g = torch.Generator().manual_seed(0)
    clips = torch.rand(5, 3, 9, 16, 16, generator=g) * 2 - 1

    gain = torch.nn.Parameter(torch.tensor(0.1))  # a model's weights, which need gradients

    def recon(x):  # exact on frame 0, off by a fixed function of the clip after it
        y = x.clone()
        y[:, :, 1:] += gain * torch.sin(37 * x[:, :, 1:])
        return y

    sc = scores(recon, [clips], batch=2)
    # no autograd graph is kept: holding every batch's graph took 21 GB on 136 clips
    assert not any(t.requires_grad for t in (sc.psnr, sc.ssim, sc.psnr_frame0, sc.psnr_later))
    assert torch.allclose(sc.psnr_frame0, torch.full((5,), 100.0))
    with torch.no_grad():
        later = psnr(recon(clips).clamp(-1, 1)[:, :, 1:], clips[:, :, 1:])
    assert torch.allclose(sc.psnr_later, later)
    assert bool((sc.psnr > sc.psnr_later).all() and (sc.psnr < sc.psnr_frame0).all())
    groups = ["a", "a", "b", "b", "b"]
    entry = {"groups": ["a", "b"], "models": {}}
    for name, p0 in (("ae", sc.psnr_frame0), ("linear_code", sc.psnr_frame0 - 3)):
        entry["models"][name] = {
            "psnr_frame0": grouped(p0, groups),
            "psnr_later": grouped(sc.psnr_later, groups),
        }
    table = "\n".join(by_position_markdown("val", entry, ["ae"]))
    assert "| **overall** | 100.00 / " in table and "| +3.00 / +0.00 |" in table
