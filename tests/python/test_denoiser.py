"""The DiT denoiser and the rectified-flow sampler on the `tiny` config."""

import pytest
import torch

from diffusable.evaluation.features import noise_equivalent_t
from diffusable.models.denoiser import Denoiser, get_denoiser_config, sincos_3d
from diffusable.models.flow import drop_labels, flow_pair, sample, sample_time
from perturb import perturbed_model


@pytest.fixture(scope="module")
def model():
    # adaLN-Zero starts at v = 0; perturb every parameter so the tests see a non-trivial map.
    return perturbed_model(lambda: Denoiser(get_denoiser_config("tiny")))


@pytest.mark.parametrize("shape", [(2, 4, 1, 4, 4), (3, 4, 5, 8, 8), (1, 4, 3, 4, 6)])
def test_shapes(model, shape):
    x = torch.randn(shape)
    v = model(x, torch.rand(shape[0]), torch.zeros(shape[0], dtype=torch.long))
    assert v.shape == x.shape


def test_untrained_model_predicts_zero():
    m = Denoiser(get_denoiser_config("tiny"))
    v = m(torch.randn(2, 4, 3, 4, 4), torch.rand(2), torch.tensor([0, 1]))
    assert torch.count_nonzero(v) == 0


def test_patchify_round_trip(model):
    x = torch.randn(2, 4, 3, 6, 8)
    assert torch.equal(model.unpatchify(model.patchify(x), 3, 6, 8), x)


def test_null_class_is_a_real_embedding(model):
    cfg = model.cfg
    x, t = torch.randn(1, 4, 2, 4, 4), torch.tensor([0.5])
    outs = [model(x, t, torch.tensor([c])) for c in range(cfg.num_classes + 1)]
    assert model.label_embed.num_embeddings == cfg.num_classes + 1 == cfg.null_class + 1
    for a in range(len(outs)):
        for b in range(a + 1, len(outs)):
            assert not torch.allclose(outs[a], outs[b])
    with pytest.raises(IndexError):
        model(x, t, torch.tensor([cfg.num_classes + 1]))


def test_batch_entries_do_not_mix(model):
    x, t, y = torch.randn(3, 4, 2, 4, 4), torch.rand(3), torch.tensor([0, 1, 2])
    together = model(x, t, y)
    alone = model(x[1:2], t[1:2], y[1:2])
    assert torch.allclose(together[1:2], alone, atol=1e-5)


def test_positional_embedding_is_distinct_per_token():
    e = sincos_3d(3, 4, 5, 32, "cpu")
    assert e.shape == (60, 32)
    assert torch.cdist(e, e).add(torch.eye(60)).min() > 1e-3


def test_one_euler_step_is_the_closed_form(model):
    noise = torch.randn(2, 4, 2, 4, 4)
    label = torch.tensor([0, 1])
    out = sample(model, noise, label, steps=1, guidance=1.0, null_class=2)
    expected = noise - model(noise, torch.ones(2), label)  # x_0 = x_1 + (0 - 1) v(x_1, 1)
    assert torch.allclose(out, expected, atol=1e-6)


def test_guidance_combines_label_and_null(model):
    noise = torch.randn(1, 4, 2, 4, 4)
    label = torch.tensor([1])
    out = sample(model, noise, label, steps=1, guidance=3.0, null_class=2)
    v_label = model(noise, torch.ones(1), label)
    v_null = model(noise, torch.ones(1), torch.tensor([2]))
    assert torch.allclose(out, noise - (v_null + 3.0 * (v_label - v_null)), atol=1e-5)


def test_heun_is_exact_on_a_linear_field():
    # v(x, t) = x - c has the flow x_t - c = (x_1 - c) e^(t - 1); Heun should be far closer than
    # Euler at the same number of velocity evaluations' order.
    c = torch.full((1, 1, 1, 1, 1), 0.3)
    field = lambda x, t, y: x - c  # noqa: E731
    x1 = torch.ones(1, 1, 1, 1, 1)
    exact = c + (x1 - c) * torch.exp(torch.tensor(-1.0))
    euler = sample(
        field,
        x1,
        torch.zeros(1, dtype=torch.long),
        steps=8,
        guidance=1.0,
        null_class=1,
        method="euler",
    )
    heun = sample(
        field,
        x1,
        torch.zeros(1, dtype=torch.long),
        steps=8,
        guidance=1.0,
        null_class=1,
        method="heun",
    )
    assert (heun - exact).abs().item() < 0.5 * (euler - exact).abs().item()


def test_the_guidance_interval_and_the_shifted_grid():
    from diffusable.models.flow import sampling_times

    # a field that records the times and labels it is called with
    calls = []

    def field(x, t, y):
        calls.append((round(float(t[0]), 6), y.tolist()))
        return torch.zeros_like(x)

    x1, label = torch.ones(1, 1, 1, 1, 1), torch.tensor([0])
    sample(field, x1, label, steps=4, guidance=2.0, null_class=1, guidance_interval=(0.3, 0.8))
    # t = 1 and 0.25 lie outside [0.3, 0.8]: one conditional row; 0.75 and 0.5: label and null
    assert calls == [(1.0, [0]), (0.75, [0, 1]), (0.5, [0, 1]), (0.25, [0])]
    assert sampling_times(4) == [1.0, 0.75, 0.5, 0.25, 0.0]
    # shift < 1 spends more of the steps near t = 0, shift > 1 near t = 1; the ends stay
    low, high = sampling_times(4, 0.5), sampling_times(4, 2.0)
    assert low[0] == high[0] == 1.0 and low[-1] == high[-1] == 0.0
    assert all(a < u < b for a, u, b in zip(low[1:-1], [0.75, 0.5, 0.25], high[1:-1]))
    assert low[2] == 0.5 * 0.5 / (1 - 0.5 * 0.5)
    calls.clear()
    sample(field, x1, label, steps=4, guidance=1.0, null_class=1, shift=0.5)
    assert [t for t, _ in calls] == [round(t, 6) for t in low[:-1]]
    with pytest.raises(ValueError, match="guidance_interval"):
        sample(field, x1, label, steps=2, guidance=2.0, null_class=1, guidance_interval=(0.9, 0.1))
    with pytest.raises(ValueError, match="shift"):
        sample(field, x1, label, steps=2, guidance=2.0, null_class=1, shift=0.0)


def test_flow_pair_and_times():
    g = torch.Generator().manual_seed(0)
    x0, e = torch.randn(4, 2, 1, 2, 2), torch.randn(4, 2, 1, 2, 2)
    t = sample_time(4, g)
    assert ((t > 0) & (t < 1)).all()
    xt, v = flow_pair(x0, e, t)
    tb = t.reshape(-1, 1, 1, 1, 1)
    assert torch.allclose(xt, (1 - tb) * x0 + tb * e) and torch.allclose(v, e - x0)
    assert torch.allclose(xt - tb * v, x0, atol=1e-6)  # x_0 is recoverable from (x_t, v)
    labels = torch.zeros(10000, dtype=torch.long)
    dropped = drop_labels(labels, 7, 0.1, g)
    assert 0.08 < (dropped == 7).float().mean() < 0.12


# --- the diffusion trainer, end to end on a tiny autoencoder ------------------------------------


def test_train_diffusion_logs_the_metric_history_and_resumes(tmp_path):
    import json

    from diffusable.training import train_ae, train_diffusion
    from toy_data import make_toy_dataset

    data = make_toy_dataset(tmp_path / "toy")
    ae = tmp_path / "ae"
    assert (
        train_ae.main(
            [
                "--config",
                "tiny",
                "--variant",
                "se",
                "--out",
                str(ae),
                "--data",
                str(data),
                "--threads",
                "1",
                "--steps",
                "2",
            ]
        )
        == 0
    )
    common = ["--ae", str(ae), "--config", "tiny", "--data", str(data), "--threads", "1"]
    out = tmp_path / "dit"
    flags = ["--out", str(out), "--experiment", "grid-test"]
    assert train_diffusion.main(common + flags + ["--stop-after", "4"]) == 0
    assert train_diffusion.main(common + flags) == 0
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    evals = [e for e in events if e["type"] == "eval"]
    assert [e["step"] for e in evals] == [0, 4, 8]
    for e in evals:
        assert e["fd_rand3d"] >= 0 and e["metric"] == "fd_rand3d" and e["extractor_hash"]
        assert e["n_generated"] == 6 and 0 <= e["class_score"] <= 1
        assert e["grid_ratio"] > 0  # of the decoded samples
        # decoder-free: the samples' latents against the training latents, over the noise's
        assert e["lfd"] == pytest.approx(e["lfd_raw"] / e["lfd_extractor"]["noise_fd"])
        assert e["lfd"] > 0 and e["lfd_extractor"]["n_real"] > 0
        assert 0 < e["lfd_extractor"]["floor"] < 1  # held-out real latents: nearer than noise
        ladder = {t: v for t, v in e["lfd_extractor"]["ladder"]}
        assert ladder[0.0] == e["lfd_extractor"]["floor"]
        assert e["lfd_t"] == pytest.approx(noise_equivalent_t(e["lfd"], ladder))
        # the trained-network distance beside the random one, each with its extractor's identity
        assert e["fd_cls3d"] >= 0 and e["extractors"]["fd_cls3d"]["extractor"] == "cls3d"
        assert e["extractors"]["fd_cls3d"]["classifier_key"]
        assert e["extractors"]["fd_rand3d"]["extractor_hash"] == e["extractor_hash"]
        buckets = [e[f"val_loss_t{i}"] for i in range(5)]
        assert all(v > 0 for v in buckets) and e["val_loss"] == pytest.approx(sum(buckets) / 5)
        assert e["val_loss_t_edges"] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    # held-out latents, noise and t are fixed: the untrained model's loss is a pure function of
    # its weights, so evaluations only differ as the weights do
    assert evals[0]["val_loss"] != evals[-1]["val_loss"]
    statuses = [e["status"] for e in events if e["type"] == "status"]
    assert statuses == ["started", "resumed", "completed"]
    config = next(e for e in events if e["type"] == "config")
    assert config["autoencoder"]["variant"] == "se" and config["model"]["num_classes"] == 2
    assert config["experiment"] == "grid-test" and set(config["metrics"]) == {
        "fd_cls3d",
        "fd_rand3d",
    }

    # --init: a new run continues from the finished one's EMA weights with its own schedule.
    # Its step-0 evaluation scores those weights on the same fixed held-out set, so it matches
    # the first run's last one; a checkpoint made on other latents is refused with one line.
    warm = tmp_path / "dit-warm"
    assert (
        train_diffusion.main(common + ["--out", str(warm), "--init", str(out), "--steps", "2"]) == 0
    )
    warm_events = [json.loads(line) for line in (warm / "events.jsonl").read_text().splitlines()]
    warm_config = next(e for e in warm_events if e["type"] == "config")
    assert warm_config["init"] == {"run_id": "dit", "step": 8}
    warm_eval0 = next(e for e in warm_events if e["type"] == "eval" and e["step"] == 0)
    assert warm_eval0["val_loss"] == pytest.approx(evals[-1]["val_loss"], rel=1e-6)
    other_ae = tmp_path / "ae-other"
    assert (
        train_ae.main(
            ["--config", "tiny", "--variant", "baseline", "--out", str(other_ae)]
            + ["--data", str(data), "--threads", "1", "--steps", "2"]
        )
        == 0
    )
    refused = common[:1] + [str(other_ae)] + common[2:] + ["--out", str(tmp_path / "x")]
    assert train_diffusion.main(refused + ["--init", str(out)]) == 2


def test_fp16_weight_storage_computes_with_the_rounded_weights(tmp_path):
    from diffusable.export.denoiser_bundle import export_denoiser_onnx
    from diffusable.export.onnx_export import _half_storage_copy, round_weights_fp16

    model = perturbed_model(lambda: Denoiser(get_denoiser_config("tiny")))
    x = torch.randn(2, 4, 2, 4, 4)
    t = torch.tensor([0.2, 0.9])
    label = torch.tensor([0, 2])
    half = _half_storage_copy(model)
    assert not list(half.parameters())
    assert all(b.dtype == torch.float16 for n, b in half.named_buffers() if n.endswith("_fp16"))
    with torch.no_grad():
        v_half = half(x, t, label)
        v_rounded = round_weights_fp16(model)(x, t, label)
    assert torch.equal(v_half, v_rounded)

    export_denoiser_onnx(model, tmp_path / "fp32.onnx", {}, "fp32")
    export_denoiser_onnx(model, tmp_path / "fp16.onnx", {}, "fp16")
    ratio = (tmp_path / "fp16.onnx").stat().st_size / (tmp_path / "fp32.onnx").stat().st_size
    assert ratio < 0.75


# --- context: image-to-video and extension -------------------------------------------------------


def context_model(seed=3):
    return perturbed_model(lambda: Denoiser(get_denoiser_config("tiny", context=True)), seed)


def test_context_zero_is_plain_generation():
    m = context_model()
    x, t, y = torch.randn(2, 4, 3, 4, 4), torch.tensor([0.3, 0.9]), torch.tensor([0, 1])
    with torch.no_grad():
        plain = m(x, t, y)
        assert torch.equal(m(x, t, y, torch.zeros(2, dtype=torch.long)), plain)
        given = m(x, t, y, torch.tensor([1, 2]))
    assert not torch.allclose(given, plain)  # the flag reaches the output


def test_context_flag_marks_only_the_given_frames():
    """Frames after the given ones differ only through attention, never through the flag: with
    one frame of one token the flag changes exactly the rows it is given to."""
    m = context_model()
    x, t, y = torch.randn(2, 4, 1, 2, 2), torch.tensor([0.5, 0.5]), torch.tensor([0, 0])
    with torch.no_grad():
        a, b = m(x, t, y, torch.tensor([0, 1])), m(x, t, y, torch.tensor([0, 0]))
    assert torch.equal(a[0], b[0]) and not torch.allclose(a[1], b[1])


@pytest.mark.parametrize("mode", ["trained", "replace"])
def test_the_sampler_keeps_the_given_frames(mode):
    m = context_model()
    g = torch.Generator().manual_seed(0)
    noise, ctx = torch.randn(2, 4, 3, 4, 4, generator=g), torch.randn(2, 4, 1, 4, 4, generator=g)
    labels = torch.tensor([0, 1])
    kw = dict(steps=4, guidance=2.0, null_class=m.cfg.null_class, method="heun")
    out = sample(m, noise, labels, context=ctx, context_mode=mode, **kw)
    free = sample(m, noise, labels, **kw)
    assert torch.equal(out[:, :, :1], ctx)
    assert not torch.allclose(out[:, :, 1:], free[:, :, 1:])  # the rest follows the context
    again = sample(m, noise, labels, context=ctx, context_mode=mode, **kw)
    assert torch.equal(out, again)  # same seed, same context: same latents


def test_draw_context():
    from diffusable.models.flow import draw_context

    g = torch.Generator().manual_seed(0)
    assert torch.equal(draw_context(64, 5, 0.0, g), torch.zeros(64, dtype=torch.long))
    k = draw_context(2000, 5, 0.5, g)
    assert set(k.tolist()) == {0, 1, 2, 3, 4}
    assert 0.4 < (k > 0).float().mean() < 0.6


def test_a_run_with_classifier_cached_starts_without_it_and_scores_once_it_is_there(tmp_path):
    """--classifier cached: a long denoiser run need not wait for the classifier's training;
    its evaluations log fd_cls3d and the class score from the first one after it is cached."""
    import json

    from diffusable.training import train_ae, train_diffusion
    from diffusable.evaluation.classifier import ClassifierConfig, classifier_cached, get_classifier
    from toy_data import make_toy_dataset

    data = make_toy_dataset(tmp_path / "toy")
    ae = tmp_path / "ae"
    flags = ["--config", "tiny", "--data", str(data), "--threads", "1"]
    assert train_ae.main(flags + ["--variant", "baseline", "--out", str(ae), "--steps", "2"]) == 0
    out = tmp_path / "dit"
    common = flags + ["--ae", str(ae), "--out", str(out), "--classifier", "cached"]
    assert train_diffusion.main(common + ["--stop-after", "4"]) == 0
    assert not classifier_cached(data, ClassifierConfig(steps=10))  # the run trained none
    get_classifier(data, ClassifierConfig(steps=10))  # another process's job, done meanwhile
    assert train_diffusion.main(common) == 0
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    evals = [e for e in events if e["type"] == "eval"]
    assert [e["step"] for e in evals] == [0, 4, 8]
    assert [("fd_cls3d" in e, e["class_score"] is not None) for e in evals] == [
        (False, False),
        (False, False),
        (True, True),
    ]
    assert evals[-1]["classifier"] and all(e["fd_rand3d"] >= 0 for e in evals)
    # a contact sheet of every evaluation's samples, to look at beside the numbers
    sheets = sorted(p.name for p in (out / "samples").glob("*.png"))
    assert sheets == ["step000000.png", "step000004.png", "step000008.png"]
