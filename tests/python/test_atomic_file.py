"""Checkpoints and cached files are written whole or not at all, by any number of processes."""

import multiprocessing as mp

import pytest
import torch

from diffusable.models import checkpoint

WRITERS = 3


def _save(path, barrier, results, value) -> None:
    # every writer has its temporary file open before any of them writes or renames: the
    # moment at which trainers started together (a grid's seeds) save one path
    save = torch.save

    def wait_then_save(obj, f):
        barrier.wait(timeout=60)
        return save(obj, f)

    torch.save = wait_then_save
    try:
        checkpoint.save_checkpoint(path, {"step": value, "w": torch.full((256, 256), float(value))})
        results.put("ok")
    except Exception as err:  # noqa: BLE001 - reported to the test, which fails on it
        results.put(f"error: {err!r}")


def test_writers_saving_one_checkpoint_at_once_all_succeed_and_leave_one_whole_file(tmp_path):
    path = tmp_path / "last.pt"
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(WRITERS), ctx.Queue()
    procs = [ctx.Process(target=_save, args=(path, barrier, results, i)) for i in range(WRITERS)]
    for p in procs:
        p.start()
    out = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert out == ["ok"] * WRITERS, out
    state = checkpoint.torch_load_trusted(path)
    # one writer's whole state, not a mix of several
    assert bool((state["w"] == float(state["step"])).all())
    assert [f.name for f in tmp_path.iterdir()] == ["last.pt"]


def test_a_save_that_fails_keeps_the_previous_checkpoint_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "last.pt"
    checkpoint.save_checkpoint(path, {"step": 1})
    with pytest.raises(Exception):
        checkpoint.save_checkpoint(path, {"step": 2, "unpicklable": lambda: None})
    assert checkpoint.torch_load_trusted(path)["step"] == 1
    assert [f.name for f in tmp_path.iterdir()] == ["last.pt"]
