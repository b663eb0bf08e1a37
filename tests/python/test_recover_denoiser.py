"""A bundle's denoiser back as a checkpoint: onnx_weights reads the graph's initializers,
recover_denoiser rebuilds the state, and train_diffusion's warm start accepts it on the
autoencoders that make its latents, and no other."""

import json

import numpy as np
import pytest
import torch

from diffusable.models.pca_residual_vae import CausalVAE, get_config
from diffusable.models.checkpoint import load_checkpoint, save_weights_fp16
from diffusable.experiments.context_eval import ContextSampler
from diffusable.models.denoiser import Denoiser, get_denoiser_config
from diffusable.export.denoiser_bundle import export_denoiser_onnx
from diffusable.export.onnx_export import round_weights_fp16, round_weights_int8
from diffusable.export.onnx_weights import read_initializers, state_from_initializers
from diffusable.export.recover_denoiser import main as recover_main
from diffusable.training.train_diffusion import warm_start
from perturb import perturbed_model


def perturbed_denoiser(seed=0, **overrides):
    return perturbed_model(lambda: Denoiser(get_denoiser_config("tiny", **overrides)), seed)


# fp32 exports fold constants (a linear weight becomes its transpose under a new name), so only
# the fp16 and int8 storages, the ones bundles ship, keep every weight under its own name.
@pytest.mark.parametrize("weights", ["fp16", "int8"])
def test_the_initializers_are_the_weights_the_graph_computes_with(tmp_path, weights):
    model = perturbed_denoiser(context=True)
    export_denoiser_onnx(model, tmp_path / "d.onnx", {}, weights)
    keys = model.state_dict().keys()
    state = state_from_initializers(read_initializers(tmp_path / "d.onnx"), keys)
    (round_weights_int8 if weights == "int8" else round_weights_fp16)(model)
    for k, v in model.state_dict().items():
        assert torch.equal(state[k], v.float()), k


def test_a_missing_weight_is_named(tmp_path):
    model = perturbed_denoiser()
    export_denoiser_onnx(model, tmp_path / "d.onnx", {}, "int8")
    inits = read_initializers(tmp_path / "d.onnx")
    with pytest.raises(ValueError, match="lacks 1 weights.*'not.there'"):
        state_from_initializers(inits, list(model.state_dict()) + ["not.there"])


def test_a_file_that_is_not_onnx_is_named(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model\n")
    with pytest.raises(ValueError, match="notes.txt is not an ONNX model"):
        read_initializers(tmp_path / "notes.txt")
    model = perturbed_denoiser()
    export_denoiser_onnx(model, tmp_path / "d.onnx", {}, "int8")
    (tmp_path / "cut.onnx").write_bytes((tmp_path / "d.onnx").read_bytes()[:5000])
    with pytest.raises(ValueError, match="cut.onnx is not an ONNX model"):
        read_initializers(tmp_path / "cut.onnx")


def ae_checkpoint(path, run_id, step, latents_from=None, seed=0):
    torch.manual_seed(seed)
    vae = CausalVAE(get_config("tiny"))
    save_weights_fp16(path, vae, "baseline", run_id, step, latents_from=latents_from)
    return path


def tiny_bundle(tmp_path, model):
    bundle = tmp_path / "bundle"
    export_denoiser_onnx(model, bundle / "denoiser.onnx", {}, "int8")
    manifest = {
        "name": "tiny",
        "classes": ["a", "b"],
        "denoiser_config": model.cfg.to_dict(),
        "onnx": {"denoiser": "denoiser.onnx", "denoiser_weights": "int8"},
        "sampler": {"method": "euler", "steps": 24, "guidance": 3.0},
        "runs": {
            "autoencoder": {
                "id": "ae-dec",
                "step": 50,
                "latents_from": {"run_id": "ae", "step": 10},
            },
            "diffusion": {"id": "dit-tiny", "step": 8},
        },
    }
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return bundle


def test_the_recovered_checkpoint_reexports_bit_for_bit_and_warm_starts(tmp_path, capsys):
    model = perturbed_denoiser(seed=1)
    bundle = tiny_bundle(tmp_path, model)
    ae = ae_checkpoint(tmp_path / "ae.pt", "ae", 10)
    out = tmp_path / "run" / "checkpoints" / "ema-int8.pt"
    assert recover_main(["--bundle", str(bundle), "--ae", str(ae), "--out", str(out)]) == 0
    state = load_checkpoint(out)
    assert state["kind"] == "denoiser" and state["run_id"] == "dit-tiny" and state["step"] == 8
    assert state["latents"] == {"run_id": "ae", "step": 10}
    assert state["recovered_from"]["weights"] == "int8"
    # the evaluators sample from it as from a training checkpoint (it has no training config),
    # at the bundle's guidance unless told otherwise
    assert state["sampler"]["guidance"] == 3.0
    sampler = ContextSampler(out, 2, None, ae)
    assert (sampler.run_id, sampler.step, sampler.guidance) == ("dit-tiny", 8, 3.0)
    assert ContextSampler(out, 2, 1.5, ae).guidance == 1.5

    # the same graph weights again when the recovered model is exported the same way
    again = Denoiser(model.cfg)
    again.load_state_dict(state["ema"])
    export_denoiser_onnx(again, tmp_path / "again.onnx", {}, "int8")
    a, b = read_initializers(tmp_path / "again.onnx"), read_initializers(bundle / "denoiser.onnx")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)

    # warm start: on the AE it was trained with, and on a decoder fine-tune of it
    fresh, ema = Denoiser(model.cfg), Denoiser(model.cfg)
    assert warm_start(out, fresh, ema, model.cfg, ae) == {"run_id": "dit-tiny", "step": 8}
    assert torch.equal(fresh.state_dict()["embed.weight"], state["ema"]["embed.weight"])
    dec = ae_checkpoint(
        tmp_path / "dec.pt", "ae-dec", 50, latents_from={"run_id": "ae", "step": 10}
    )
    warm_start(out, fresh, ema, model.cfg, dec)
    other = ae_checkpoint(tmp_path / "other.pt", "ae", 20)
    with pytest.raises(ValueError, match="latents of another autoencoder"):
        warm_start(out, fresh, ema, model.cfg, other)


def test_an_autoencoder_with_other_latents_is_refused_in_one_line(tmp_path, capsys):
    bundle = tiny_bundle(tmp_path, perturbed_denoiser())
    other = ae_checkpoint(tmp_path / "other.pt", "ae", 20)
    out = tmp_path / "out.pt"
    assert recover_main(["--bundle", str(bundle), "--ae", str(other), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("recover_denoiser: other.pt makes the latents of") and "\n" not in err
    assert not out.exists()
    assert recover_main(["--bundle", str(tmp_path), "--ae", str(other), "--out", str(out)]) == 2
    assert "no manifest.json" in capsys.readouterr().err


def test_a_label_only_denoiser_warm_starts_a_context_trained_one_and_predicts_the_same(tmp_path):
    model = perturbed_denoiser(seed=2)
    bundle = tiny_bundle(tmp_path, model)
    ae = ae_checkpoint(tmp_path / "ae.pt", "ae", 10)
    out = tmp_path / "run" / "checkpoints" / "ema-int8.pt"
    assert recover_main(["--bundle", str(bundle), "--ae", str(ae), "--out", str(out)]) == 0
    weights = load_checkpoint(out)["ema"]

    cfg = get_denoiser_config("tiny", context=True)
    fresh, ema = Denoiser(cfg), Denoiser(cfg)
    info = warm_start(out, fresh, ema, cfg, ae)
    assert info == {"run_id": "dit-tiny", "step": 8, "context_added": True}
    # the one new weight starts at zero, so given frames change nothing until it trains
    assert torch.count_nonzero(fresh.context_flag) == 0
    label_only = Denoiser(model.cfg)
    label_only.load_state_dict(weights)
    x = torch.randn(2, 4, 3, 8, 8)  # (B, C, t, h, w)
    t, y = torch.tensor([0.3, 0.8]), torch.tensor([0, 1])
    with torch.no_grad():
        expected = label_only(x, t, y)
        assert torch.equal(fresh(x, t, y, context=torch.tensor([1, 2])), expected)
        assert torch.equal(ema(x, t, y), expected)

    # the other way round would drop a trained weight: refused
    context_run = tmp_path / "ctx.pt"
    torch.save(
        {**load_checkpoint(out), "config": cfg.to_dict(), "ema": fresh.state_dict()}, context_run
    )
    with pytest.raises(ValueError, match="another denoiser config"):
        warm_start(context_run, Denoiser(model.cfg), Denoiser(model.cfg), model.cfg, ae)
