"""The GPU pipeline's driver and what it relies on: step budgets, compact weights, device clips."""

import json
import shutil
import tarfile
import threading

import torch

from diffusable.experiments import gpu_protocol
from diffusable.models.checkpoint import (
    compact_state,
    load_autoencoder,
    load_checkpoint,
    quantize_int8,
    expand_int8,
    save_checkpoint,
)
from diffusable.data.clips import ClipDataset
from diffusable.models.denoiser import Denoiser, DenoiserConfig
from diffusable.training.trainer import StepBudget
from toy_data import make_toy_dataset


def test_smoke_pipeline_packs_runs_weights_and_logs(tmp_path):
    data = make_toy_dataset(tmp_path / "toy")
    out, work = tmp_path / "out", tmp_path / "work"
    args = ["--out", str(out), "--smoke", "--data", str(data), "--work", str(work)]
    assert gpu_protocol.main(args) == 0
    parts = sorted(out.glob("results.tar.part*"))
    assert 1 <= len(parts) <= 8 and all(p.stat().st_size <= 16 << 20 for p in parts)
    joined = tmp_path / "results.tar"
    joined.write_bytes(b"".join(p.read_bytes() for p in parts))
    back = tmp_path / "back"
    with tarfile.open(joined) as tar:
        names = set(tar.getnames())
        tar.extractall(back)
    for variant in ("baseline", "se", "se-spatial"):
        assert f"runs/ae-conv-tiny-gpu-{variant}/events.jsonl" in names
        assert f"runs/ae-conv-tiny-gpu-{variant}/checkpoints/last.pt" in names
    for variant in ("baseline", "se"):
        assert f"runs/dit-tiny-gpu-{variant}/checkpoints/last.pt" in names
        assert f"logs/dit-tiny-gpu-{variant}.log" in names
    summary = json.loads((back / "summary.json").read_text())
    assert [s["stage"] for s in summary["stages"]] == ["pretrain", "finetunes", "denoisers"]
    assert all(code == 0 for s in summary["stages"] for code in s["exit"].values())

    # The int8 fine-tune that came back decodes as the run's own EMA weights do, within the
    # int8 rounding; the fp16 denoiser loads into its config.
    se = "runs/ae-conv-tiny-gpu-se/checkpoints/last.pt"
    packed, _ = load_autoencoder(back / se)
    full, meta = load_autoencoder(work / se)
    assert meta["final"] and meta["variant"] == "se"
    video = ClipDataset(data, "val").batch([0, 1])[0]
    with torch.no_grad():
        a, b = full.decode(full.encode(video)[0]), packed.decode(packed.encode(video)[0])
    assert (a - b).abs().max() < 0.05 and not torch.equal(a, b)
    dit = load_checkpoint(back / "runs/dit-tiny-gpu-se/checkpoints/last.pt")
    assert "opt" not in dit and dit["kind"] == "denoiser"
    Denoiser(DenoiserConfig.from_dict(dit["config"])).load_state_dict(dit["ema"])


def test_int8_weights_round_trip_through_load_checkpoint(tmp_path):
    torch.manual_seed(0)
    ema = {"conv.weight": torch.randn(8, 4, 3, 3), "conv.bias": torch.randn(8)}
    ema["latent_shift"] = torch.randn(4)
    save_checkpoint(tmp_path / "c.pt", compact_state({"kind": "x", "ema": ema, "opt": {}}, "int8"))
    back = load_checkpoint(tmp_path / "c.pt")
    assert "opt" not in back and set(back["ema"]) == set(ema)
    assert torch.equal(back["ema"]["conv.bias"], ema["conv.bias"])  # 1-D tensors stay exact
    w, q = ema["conv.weight"], back["ema"]["conv.weight"]
    step = w.abs().amax(dim=(1, 2, 3), keepdim=True) / 127
    assert ((w - q).abs() <= step / 2 + 1e-3).all()
    assert expand_int8(quantize_int8(ema))["latent_shift"].equal(ema["latent_shift"])


def test_step_budget_fixes_the_count_once_within_the_configured_steps(tmp_path):
    generous = StepBudget(1e6, skip=2, measure=3)
    assert [generous.after_step(s, 0, 500, "r") for s in range(1, 5)] == [None] * 4
    assert generous.after_step(5, 0, 500, "r") == 500  # never more than configured
    assert generous.after_step(6, 0, 500, "r") is None  # once
    spent = StepBudget(0.0, skip=2, measure=3)
    for s in range(1, 5):
        spent.after_step(s, 0, 500, "r")
    assert spent.after_step(5, 0, 500, "r") == 6  # out of time: one more step, then the end
    assert spent.eval_every(600, 7) == 7 and StepBudget(1, evals=3).eval_every(600, 7) == 200


def test_step_budget_peers_agree_on_the_smallest_count(tmp_path):
    sync = f"{tmp_path / 'sync'}:2"
    results = {}

    def run(name, seconds):
        b = StepBudget(seconds, sync=sync, skip=1, measure=1)
        assert b.measure == 3  # peers share a device: a longer window
        fixed = [b.after_step(s, 0, 10_000, name) for s in range(1, 5)]
        assert fixed[:3] == [None] * 3
        results[name] = fixed[3]

    threads = [threading.Thread(target=run, args=(n, s)) for n, s in (("a", 1e6), ("b", 0.0))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results["a"] == results["b"] == 5


def test_device_clips_batches_equal_the_dataset_batches(tmp_path):
    data = make_toy_dataset(tmp_path / "toy")
    ds = ClipDataset(data, "train")
    on = ds.on_device("cpu")
    for idx in ([0, 3, 5], [5, 0], [2]):
        (a, la), (b, lb) = ds.batch(idx), on.batch(idx)
        assert torch.equal(a, b) and torch.equal(la, lb)


def _events(run):
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]


def test_budgeted_runs_fix_their_steps_evaluate_and_finish(tmp_path):
    """The path the GPU run takes: --time-budget with evaluations spread over the fixed count,
    for the AE trainer and the denoiser trainer; a count that could never fit is cut."""
    import os
    import subprocess
    import sys

    # Subprocesses, as the driver starts them: a budget counts from its process's start.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))

    def run(module, args):
        cmd = [sys.executable, "-m", f"diffusable.{module}", *args]
        return subprocess.run(cmd, env=env, capture_output=True, timeout=300).returncode

    data = make_toy_dataset(tmp_path / "toy")
    ae = tmp_path / "ae"
    args = ["--config", "conv-tiny", "--variant", "se", "--out", str(ae), "--data", str(data)]
    args += ["--threads", "1", "--steps", "100000", "--time-budget", "8", "--budget-evals", "2"]
    args += ["--budget-sync", f"{tmp_path / 'sync'}:1", "--log-every", "10"]
    assert run("training.train_ae", args) == 0
    ev = _events(ae)
    budget = [e for e in ev if e["type"] == "budget"][-1]
    assert 40 < budget["steps"] < 100000 and budget["eval_every"] == budget["steps"] // 2
    # After the count is fixed, evaluations fall on its halves (the preset's came before).
    after = [e["step"] for e in ev if e["type"] == "val" and e["step"] > budget["step"]]
    every = budget["eval_every"]
    assert after[-1] == budget["steps"] and all(s % every == 0 for s in after[:-1])
    assert ev[-1]["status"] == "completed" and ev[-1]["step"] == budget["steps"]
    assert load_checkpoint(ae / "checkpoints" / "last.pt")["train"]["steps"] == budget["steps"]

    dit = tmp_path / "dit"
    args = ["--ae", str(ae), "--config", "tiny", "--out", str(dit), "--data", str(data)]
    args += ["--threads", "1", "--steps", "100000", "--time-budget", "8", "--budget-evals", "2"]
    args += ["--classifier", "cached", "--log-every", "10"]
    assert run("training.train_diffusion", args) == 0
    ev = _events(dit)
    budget = [e for e in ev if e["type"] == "budget"][-1]
    assert 40 < budget["steps"] < 100000
    assert [e["step"] for e in ev if e["type"] == "eval"][-1] == budget["steps"]
    assert ev[-1]["status"] == "completed"


def test_finish_ae_makes_a_stopped_run_usable(tmp_path, capsys):
    from diffusable.training import finish_ae, train_ae
    from diffusable.training.latent_cache import build_latent_cache, load_latents

    data = make_toy_dataset(tmp_path / "toy")
    run = tmp_path / "ae"
    args = ["--config", "conv-tiny", "--variant", "se", "--out", str(run), "--data", str(data)]
    assert train_ae.main(args + ["--threads", "1", "--stop-after", "3"]) == 0
    assert not load_checkpoint(run / "checkpoints" / "last.pt").get("final")
    # A run folder without its log, or with a log without its config: one line, exit 2, and
    # the checkpoint is left as it was.
    bare = tmp_path / "bare"
    shutil.copytree(run, bare)
    (bare / "events.jsonl").unlink()
    capsys.readouterr()
    assert finish_ae.main([str(bare), "--data", str(data)]) == 2
    (bare / "events.jsonl").write_text('{"type": "status", "step": 0, "status": "started"}\n')
    assert finish_ae.main([str(bare), "--data", str(data)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "events.jsonl" in err[0] and "config event" in err[1]
    assert not load_checkpoint(bare / "checkpoints" / "last.pt").get("final")
    try:
        build_latent_cache(run, str(data))
        raise AssertionError("a stopped run's latents must be refused")
    except ValueError:
        pass
    assert finish_ae.main([str(run), "--data", str(data)]) == 0
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["final"] and state["step"] == 3 and "opt" not in state
    last = _events(run)[-1]
    assert last["status"] == "completed" and last["stopped_at"] == 3
    assert last["planned_steps"] == state["train"]["steps"]
    lat, _, _ = load_latents(build_latent_cache(run, str(data)), "train")
    z = lat.transpose(0, 1).flatten(1)  # (C, N*t*h*w): calibrated to zero mean, unit variance
    assert z.mean(1).abs().max() < 0.3 and (z.std(1) - 1).abs().max() < 0.3
    assert finish_ae.main([str(run), "--data", str(data)]) == 2  # already final


def test_plan_steps_keeps_room_for_the_evaluations_still_to_come():
    from diffusable.training.trainer import plan_steps

    # 100 s budget, 10 s used at step 40, 0.1 s a step: a 12% reserve leaves 78 s = 780 steps.
    assert plan_steps(40, 0.1, 10, 100, 0.12, 10**9) == 820
    # Three evaluations of 10 s still to come need 36 s, more than the reserve: 540 steps.
    assert plan_steps(40, 0.1, 10, 100, 0.12, 10**9, eval_s=10, evals_left=3) == 580
    # Never more than configured; never negative room.
    assert plan_steps(40, 0.1, 10, 100, 0.12, 500) == 500
    assert plan_steps(40, 0.1, 99, 100, 0.12, 10**9) == 40
