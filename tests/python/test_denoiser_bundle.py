"""denoiser_bundle: the manifest's "conditioning" block comes from the run's training window;
--sampler-only changes the sampler defaults and nothing else."""

import json
import shutil

import pytest

from diffusable import paths
from diffusable.export.denoiser_bundle import conditioning, main, training_window, with_sampler

CONTEXT = {"context_prob": 0.3}


def fake_run(tmp_path, latent_shape, frames=None):
    """A run folder whose config event names a latent cache (latents.json) over a dataset."""
    data = tmp_path / "data"
    data.mkdir()
    if frames is not None:
        (data / "dataset.json").write_text(json.dumps({"frames": frames}))
    cache = tmp_path / "cache"
    cache.mkdir()
    info = {"latent_shape": latent_shape, "data": str(data)}
    (cache / "latents.json").write_text(json.dumps(info))
    events = tmp_path / "events.jsonl"
    lines = [{"type": "start"}, {"type": "config", "latent_cache": str(cache)}]
    events.write_text("".join(json.dumps(e) + "\n" for e in lines))
    return events


def test_the_window_comes_from_the_checkpoint_first(tmp_path):
    state = {"window": {"frames": 17, "latents": 5}}
    assert training_window(state, tmp_path / "none.jsonl", 4) == (17, 5)


def test_an_older_run_is_read_through_its_latent_cache_and_dataset(tmp_path):
    events = fake_run(tmp_path, [16, 5, 8, 8], frames=17)
    assert training_window({}, events, 4) == (17, 5)
    block = conditioning(CONTEXT, training_window({}, events, 4))
    assert block == {
        "window_frames": 17,
        "window_latents": 5,
        "max_context_latents": 4,
        "extension_context_latents": 2,
    }


def test_without_the_dataset_the_frames_follow_the_causal_rule(tmp_path):
    events = fake_run(tmp_path, [4, 3, 2, 2])
    assert training_window({}, events, 4) == (9, 3)


def test_no_block_without_context_training_or_a_known_window(tmp_path):
    assert conditioning({"context_prob": 0.0}, (17, 5)) is None
    assert conditioning({}, (17, 5)) is None
    assert conditioning(CONTEXT, None) is None
    assert training_window({}, tmp_path / "missing.jsonl", 4) is None


def test_extension_context_is_capped_below_the_window():
    block = conditioning(CONTEXT, (9, 3), extension_context=4)
    assert block["max_context_latents"] == 2 and block["extension_context_latents"] == 2
    assert conditioning(CONTEXT, (17, 5), extension_context=3)["extension_context_latents"] == 3


def test_sampler_only_rewrites_the_sampler_block_and_nothing_else(tmp_path):
    bundle = tmp_path / "small-se"
    shutil.copytree(paths.REPO_ROOT / "models" / "small-se", bundle)
    before = json.loads((bundle / "manifest.json").read_text())
    onnx_bytes = {f.name: f.read_bytes() for f in bundle.iterdir() if f.suffix != ".json"}
    assert main(["--bundle", str(bundle), "--sampler-only", "--steps", "7"]) == 0
    after = json.loads((bundle / "manifest.json").read_text())
    assert after["sampler"] == {**before["sampler"], "steps": 7}
    assert {k: v for k, v in after.items() if k != "sampler"} == {
        k: v for k, v in before.items() if k != "sampler"
    }
    assert {f.name: f.read_bytes() for f in bundle.iterdir() if f.suffix != ".json"} == onnx_bytes
    # the key order and formatting of the file are kept: only the changed value differs
    text = (bundle / "manifest.json").read_text()
    assert text == json.dumps(after, indent=2) + "\n"


def test_sampler_only_refuses_what_the_service_would_refuse(tmp_path, capsys):
    manifest = {"name": "b", "onnx": {"denoiser": "denoiser.onnx"}}
    manifest["sampler"] = {"method": "euler", "steps": 24, "guidance": 3.0, "max_steps": 200}
    with pytest.raises(ValueError, match="1..200"):
        with_sampler(manifest, {"steps": 201})
    with pytest.raises(ValueError, match="guidance"):
        with_sampler(manifest, {"guidance": -1.0})
    with pytest.raises(ValueError, match="needs --guidance"):
        with_sampler(manifest, {"steps": None})
    with pytest.raises(ValueError, match="no denoiser"):
        with_sampler({"name": "ae-only", "onnx": {}}, {"steps": 12})
    assert with_sampler(manifest, {"steps": 12, "method": None})["sampler"]["steps"] == 12
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert main(["--bundle", str(tmp_path), "--sampler-only", "--steps", "0"]) == 2
    assert (
        main(["--bundle", str(tmp_path), "--sampler-only", "--ckpt", "x.pt", "--steps", "3"]) == 2
    )
    assert main(["--bundle", str(tmp_path), "--steps", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "denoiser_bundle: --steps must be in 1..200, got 0",
        "denoiser_bundle: --sampler-only takes no --ckpt",
        "denoiser_bundle: --ckpt is required (or --sampler-only)",
    ]
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest
