"""I3D for FVD: the loader on a weights file the test makes, the FVD preprocessing, and the
`fvd_i3d` extractor. The real Kinetics-400 weights are not here; a randomly initialised state
dict in the same layout stands in for the user's file."""

import hashlib

import numpy as np
import pytest
import torch

from diffusable.evaluation.features import FeatureExtractor
from diffusable.evaluation.i3d import (
    I3DWeightsError,
    InceptionI3d,
    expected_shapes,
    i3d_logits,
    load_i3d,
    preprocess_fvd,
)


def random_state_dict(seed: int = 0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        state = InceptionI3d().state_dict()
        g = torch.Generator().manual_seed(seed)
        for k, v in state.items():  # batch-norm statistics that are not the identity
            if k.endswith("running_mean"):
                v.copy_(torch.randn(v.shape, generator=g) * 0.1)
            elif k.endswith("running_var"):
                v.copy_(torch.rand(v.shape, generator=g) + 0.5)
    return state


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("i3d") / "rgb_kinetics400.pt"
    torch.save(random_state_dict(), path)
    return path


def clips(n: int, t: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, t, h, w, generator=g) * 2 - 1


def test_key_layout_is_the_pytorch_i3d_port():
    shapes = expected_shapes()
    for key, shape in {
        "Conv3d_1a_7x7.conv3d.weight": (64, 3, 7, 7, 7),
        "Conv3d_1a_7x7.bn.running_mean": (64,),
        "Conv3d_2c_3x3.conv3d.weight": (192, 64, 3, 3, 3),
        "Mixed_3b.b0.conv3d.weight": (64, 192, 1, 1, 1),
        "Mixed_4f.b2b.bn.running_var": (128,),
        "Mixed_5c.b3b.conv3d.weight": (128, 832, 1, 1, 1),
        "logits.conv3d.weight": (400, 1024, 1, 1, 1),
        "logits.conv3d.bias": (400,),
    }.items():
        assert shapes[key] == shape, key
    assert "Conv3d_1a_7x7.conv3d.bias" not in shapes and "logits.bn.weight" not in shapes
    assert len([k for k in shapes if not k.endswith("num_batches_tracked")]) == 57 * 5 + 2


def test_logits_shape_dtype_determinism_and_extractor(weights):
    x = clips(2, 12, 32, 40)  # 12 frames at 32x40: repeated to 16, resized to 224x224
    model = load_i3d(weights)
    saved = torch.load(weights)
    assert torch.equal(
        model.state_dict()["Mixed_4d.b1b.conv3d.weight"], saved["Mixed_4d.b1b.conv3d.weight"]
    )
    a = i3d_logits(model, x)
    assert a.shape == (2, 400) and a.dtype == np.float64 and np.isfinite(a).all()
    assert not np.allclose(a[0], a[1])

    extractor = FeatureExtractor.i3d(weights)  # a second load, the same file
    b = extractor.features(x)
    assert np.array_equal(a, b)

    info = extractor.describe()
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    assert info["metric"] == extractor.metric == "fvd_i3d"
    assert info["extractor"] == "i3d" and info["extractor_hash"] == digest
    pre = info["preprocessing"]
    assert (pre["frames"], pre["size"], pre["value_range"]) == (16, 224, "[-1, 1]")
    assert "bilinear" in pre["resize"]


def test_fallback_extractor_description_is_unchanged():
    info = FeatureExtractor().describe()
    assert info["metric"] == "fd_rand3d" and info["extractor"] == "rand3d"
    assert info["preprocessing"] == {"frames": 16, "size": 64, "value_range": "[-1, 1]"}


def test_preprocess_fvd_protocol():
    x = clips(2, 20, 8, 10)
    y = preprocess_fvd(x)
    assert y.shape == (2, 3, 16, 224, 224) and y.dtype == torch.float32
    assert y.min() >= -1 and y.max() <= 1
    # the first 16 frames, each resized on its own
    one = preprocess_fvd(x[:, :, 15:16])
    assert torch.allclose(y[:, :, 15], one[:, :, 0])
    # fewer frames: the last one repeated
    short = preprocess_fvd(x[:, :, :5])
    assert all(torch.equal(short[:, :, t], short[:, :, 4]) for t in range(5, 16))
    assert torch.allclose(short[:, :, :5], y[:, :, :5])
    # a constant frame stays constant; values beyond [-1, 1] are clamped
    flat = preprocess_fvd(torch.full((1, 3, 1, 8, 8), 1.5))
    assert torch.equal(flat, torch.ones_like(flat))
    # already 224x224: unchanged
    big = clips(1, 16, 224, 224)
    assert torch.equal(preprocess_fvd(big), big)
    with pytest.raises(ValueError, match="expected clips"):
        preprocess_fvd(torch.zeros(1, 16, 3, 8, 8))


def test_accepted_containers(tmp_path):
    state = random_state_dict(1)
    legacy = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    for name, obj in {
        "wrapped.pt": {"state_dict": state, "epoch": 3},
        "model.pt": {"model": legacy},
        "ddp.pt": {"module." + k: v for k, v in state.items()},
    }.items():
        torch.save(obj, tmp_path / name)
        model = load_i3d(tmp_path / name)
        assert torch.equal(model.logits.conv3d.bias, state["logits.conv3d.bias"])
        assert not model.training


def test_bad_files_fail_with_one_readable_error(tmp_path):
    state = random_state_dict(2)

    def error_for(obj, name="bad.pt") -> str:
        torch.save(obj, tmp_path / name)
        with pytest.raises(I3DWeightsError) as err:
            load_i3d(tmp_path / name)
        message = str(err.value)
        assert str(tmp_path / name) in message
        return message

    missing = dict(state)
    del missing["Mixed_4c.b2a.bn.running_var"]
    msg = error_for(missing)
    assert "1 missing (Mixed_4c.b2a.bn.running_var)" in msg

    wrong = dict(state, **{"Mixed_3b.b0.conv3d.weight": torch.zeros(64, 192, 3, 3, 3)})
    msg = error_for(wrong)
    assert "1 mis-shaped" in msg and "Mixed_3b.b0.conv3d.weight" in msg
    assert "(64, 192, 3, 3, 3)" in msg and "(64, 192, 1, 1, 1)" in msg

    everything = {k: v for k, v in state.items() if not k.startswith("Mixed_5")}
    everything["logits.conv3d.weight"] = torch.zeros(600, 1024, 1, 1, 1)
    everything["fc.weight"] = torch.zeros(3)
    msg = error_for(everything)
    assert "missing" in msg and "more)" in msg and "1 unexpected (fc.weight)" in msg
    assert "mis-shaped" in msg and "600 classes" in msg

    assert "not a state dict" in error_for([1, 2, 3])
    (tmp_path / "garbage.pt").write_bytes(b"not a torch file")
    with pytest.raises(I3DWeightsError, match="could not be read"):
        load_i3d(tmp_path / "garbage.pt")
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        FeatureExtractor.i3d(tmp_path / "nowhere.pt")
