"""The encoder graphs keep one copy of their weights (ONNX external data): the graphs hold the
same initializers as before, each distinct tensor is stored once, and a bundle's manifest pins
the weights file. onnxruntime computing with them is the node side's test (onnx-parity)."""

import json

import numpy as np
import pytest
import torch

from diffusable.models.denoiser import Denoiser, get_denoiser_config
from diffusable.export.ae_bundle import ENCODER_WEIGHTS, export_autoencoder
from diffusable.export.denoiser_bundle import export_denoiser_onnx
from diffusable.models.autoencoders import build
from diffusable.models.autoencoders import get_config as get_any_config
from diffusable.export.onnx_export import bundle_file_entries
from diffusable.export.onnx_shared_weights import main as share_main
from diffusable.export.onnx_shared_weights import share_weights
from diffusable.export.onnx_weights import read_initializers
from perturb import perturbed_model

ENCODERS = ["encoder.onnx", "encoder_init.onnx", "encoder_step.onnx"]


def make_tiny_vae():
    return perturbed_model(lambda: build(get_any_config("conv-tiny")))


def tiny_denoiser_graphs(folder, names):
    torch.manual_seed(0)
    model = Denoiser(get_denoiser_config("tiny")).eval()
    for name in names:
        export_denoiser_onnx(model, folder / name, {}, "int8")


def test_graphs_keep_their_initializers_and_share_one_copy(tmp_path):
    tiny_denoiser_graphs(tmp_path, ["a.onnx", "b.onnx"])
    before = {n: read_initializers(tmp_path / n) for n in ["a.onnx", "b.onnx"]}
    sizes = {n: (tmp_path / n).stat().st_size for n in ["a.onnx", "b.onnx"]}
    r = share_weights([tmp_path / "a.onnx", tmp_path / "b.onnx"], tmp_path / "w.weights", 256)
    for n, inits in before.items():
        after = read_initializers(tmp_path / n)
        assert after.keys() == inits.keys()
        for k, v in inits.items():
            assert after[k].dtype == v.dtype and np.array_equal(after[k], v), k
        # the moved bytes left the graph (a location, offset and length took their place)
        moved = [v.nbytes for v in inits.values() if v.nbytes >= 256]
        assert (tmp_path / n).stat().st_size <= sizes[n] - sum(moved) + 80 * len(moved)
    # two identical graphs: the weights file holds one graph's large tensors, not two
    weights = (tmp_path / "w.weights").stat().st_size
    large = sum(v.nbytes for v in before["a.onnx"].values() if v.nbytes >= 256)
    assert large <= weights < large + 64 * r["tensors"]
    assert r["bytes_after"] < r["bytes_before"] - large // 2


def test_small_tensors_stay_inside_the_graph(tmp_path):
    tiny_denoiser_graphs(tmp_path, ["a.onnx"])
    share_weights([tmp_path / "a.onnx"], tmp_path / "w.weights", 1 << 30)
    assert (tmp_path / "w.weights").stat().st_size == 0
    assert b"w.weights" not in (tmp_path / "a.onnx").read_bytes()


def test_the_autoencoder_export_shares_the_encoder_weights(tmp_path):
    vae = make_tiny_vae()
    onnx = export_autoencoder(vae, tmp_path, {}, "int8")
    assert onnx["external_data"] == [ENCODER_WEIGHTS]
    enc = read_initializers(tmp_path / "encoder.onnx")
    for name in ENCODERS[1:]:
        other = read_initializers(tmp_path / name)
        shared = [k for k in enc if k in other and enc[k].nbytes >= 1024]
        assert shared, name
        for k in shared:
            assert np.array_equal(enc[k], other[k]), k
    for name in ENCODERS:
        assert ENCODER_WEIGHTS.encode() in (tmp_path / name).read_bytes()
    assert ENCODER_WEIGHTS.encode() not in (tmp_path / "decoder.onnx").read_bytes()


def test_a_weights_location_outside_the_folder_is_refused(tmp_path):
    tiny_denoiser_graphs(tmp_path, ["a.onnx"])
    share_weights([tmp_path / "a.onnx"], tmp_path / "w.weights", 256)
    data = (tmp_path / "a.onnx").read_bytes()
    # same length, so the protobuf stays well formed
    (tmp_path / "a.onnx").write_bytes(data.replace(b"w.weights", b"../.weigh"))
    with pytest.raises(ValueError, match="not a file beside the graph"):
        read_initializers(tmp_path / "a.onnx")


def test_the_cli_answers_a_bad_file_in_one_line(tmp_path, capsys):
    (tmp_path / "notes.onnx").write_text("not a model\n")
    assert share_main([str(tmp_path / "w.weights"), str(tmp_path / "notes.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "notes.onnx is not an ONNX model" in err
    assert not (tmp_path / "w.weights").exists()
    assert share_main([]) == 2


def test_the_bundle_files_include_the_weights(tmp_path):
    vae = make_tiny_vae()
    export_autoencoder(vae, tmp_path, {}, "int8")
    (tmp_path / "manifest.json").write_text(json.dumps({}))
    files = bundle_file_entries(tmp_path)
    assert set(files) == set(ENCODERS) | {"decoder.onnx", ENCODER_WEIGHTS}
    assert files[ENCODER_WEIGHTS]["bytes"] == (tmp_path / ENCODER_WEIGHTS).stat().st_size
