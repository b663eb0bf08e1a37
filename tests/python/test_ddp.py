"""The AE trainer under DDP: two CPU ranks over gloo, started with the env:// variables.

Debian's torchrun (torch 1.13 on Python 3.11) fails at start here, so the test starts the ranks
itself, as torchrun would: MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from diffusable.training.train_ae import TRAIN_PRESETS, step_draws
from toy_data import make_toy_dataset

SRC = Path(__file__).resolve().parents[2] / "src" / "training"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_two_ranks(out: Path, data: Path, *extra: str) -> list:
    port = str(free_port())
    procs = []
    for rank in (0, 1):
        env = dict(
            os.environ,
            PYTHONPATH=str(SRC),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=port,
            WORLD_SIZE="2",
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            # a stuck collective raises within two minutes rather than hanging the suite
            DIFFUSABLE_DIST_TIMEOUT_S="120",
        )
        cmd = [sys.executable, "-m", "diffusable.training.train_ae", "--config", "conv-tiny"]
        cmd += ["--variant", "se", "--out", str(out), "--data", str(data), "--threads", "1"]
        cmd += ["--steps", "4", "--batch-size", "2", "--eval-every", "100", "--ckpt-every", "2"]
        procs.append(subprocess.Popen(cmd + list(extra), env=env, stderr=subprocess.PIPE))
    try:
        errs = [p.communicate(timeout=300)[1].decode() for p in procs]
    except subprocess.TimeoutExpired:
        # Show where each rank waits (the trainer prints its stacks on SIGUSR1), then fail.
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGUSR1)
        time.sleep(2)
        for p in procs:
            p.kill()
        stacks = [p.communicate()[1].decode()[-4000:] for p in procs]
        pytest.fail("the ranks did not finish in 300 s:\n" + "\n---\n".join(stacks))
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], errs
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_dataset(tmp_path_factory.mktemp("toy-ddp"))


def test_ranks_draw_disjoint_clips_of_one_global_batch():
    cfg = TRAIN_PRESETS["conv-tiny"]
    shape = (cfg.batch_size, 4, 3, 4, 4)
    for step in range(5):
        a = step_draws(cfg, step, 0, 6, shape, "se", world=2)
        b = step_draws(cfg, step, 1, 6, shape, "se", world=2)
        assert not set(a.indices) & set(b.indices)
        assert not (a.noise == b.noise).all()  # per-rank noise


def test_two_ranks_train_as_one_and_resume(tmp_path, toy):
    events = train_two_ranks(tmp_path / "straight", toy)
    # Only rank 0 writes: one config event, one train event per step, one completion.
    assert [e["type"] for e in events].count("config") == 1
    assert [e["step"] for e in events if e["type"] == "train"] == [1, 2, 3, 4]
    assert [e["status"] for e in events if e["type"] == "status"] == ["started", "completed"]
    config = next(e for e in events if e["type"] == "config")
    assert config["world_size"] == 2
    # DDP kept both replicas' weights identical.
    ddp = [e for e in events if e["type"] == "ddp"]
    assert len(ddp) == 1 and ddp[0]["weights_max_abs_diff"] == 0.0
    assert (tmp_path / "straight" / "checkpoints" / "last.pt").is_file()

    train_two_ranks(tmp_path / "split", toy, "--stop-after", "2")
    resumed = train_two_ranks(tmp_path / "split", toy)
    statuses = [e["status"] for e in resumed if e["type"] == "status"]
    assert statuses == ["started", "resumed", "completed"]
    loss = lambda ev: [(e["step"], e["loss"]) for e in ev if e["type"] == "train"]  # noqa: E731
    assert loss(resumed) == pytest.approx(loss(events), rel=1e-5)
