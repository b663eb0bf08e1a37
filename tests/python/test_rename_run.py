"""rename_run: a run gets another id in its folder name, events and checkpoints; the records of
other runs (its ancestor's id, its autoencoder's) keep theirs."""

import json

import torch

from diffusable.models.checkpoint import load_checkpoint, save_checkpoint
from diffusable.training.rename_run import main


def make_run(root, name):
    run = root / name
    events = [
        {"type": "config", "time": 1.0, "step": 0, "run_id": name, "init": {"run_id": name}},
        {"type": "status", "time": 2.0, "step": 0, "status": "started"},
        {"type": "eval", "time": 3.0, "step": 4, "val_loss": 0.5},
    ]
    run.mkdir()
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    state = {"kind": "denoiser", "run_id": name, "step": 4, "ema": {"w": torch.ones(2)}}
    save_checkpoint(run / "checkpoints" / "last.pt", state)
    return run


def test_the_run_and_only_the_run_is_renamed(tmp_path, capsys):
    run = make_run(tmp_path, "dit-medium-se")
    assert main([str(run), "dit-medium-data-se"]) == 0
    assert not run.exists()
    new = tmp_path / "dit-medium-data-se"
    events = [json.loads(x) for x in (new / "events.jsonl").read_text().splitlines()]
    assert [e["type"] for e in events] == ["config", "status", "eval"]
    assert events[0]["run_id"] == "dit-medium-data-se"
    assert events[0]["init"] == {"run_id": "dit-medium-se"}  # its ancestor keeps its id
    assert events[2]["val_loss"] == 0.5
    state = load_checkpoint(new / "checkpoints" / "last.pt")
    assert state["run_id"] == "dit-medium-data-se" and state["step"] == 4
    assert torch.equal(state["ema"]["w"], torch.ones(2))
    assert "dit-medium-se -> dit-medium-data-se" in capsys.readouterr().out


def test_bad_renames_change_nothing_and_say_why_in_one_line(tmp_path, capsys):
    run = make_run(tmp_path, "a")
    make_run(tmp_path, "b")
    before = (run / "events.jsonl").read_bytes()
    for args, says in (
        ([str(run), "b"], "b already exists"),
        ([str(run), "../x"], "letters, digits"),
        ([str(tmp_path / "none"), "c"], "not a run folder"),
    ):
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("rename_run: ") and says in err and "\n" not in err
    assert (run / "events.jsonl").read_bytes() == before
    assert load_checkpoint(run / "checkpoints" / "last.pt")["run_id"] == "a"
