"""Statistics over seeds (seed_stats) and the grid command that produces their runs."""

import json
import math

import pytest
from scipy.stats import t as student_t

from diffusable.experiments import seed_stats
from diffusable.experiments.seed_stats import (
    conclusion,
    paired_difference,
    relative_difference,
    steps_to_reach,
)


def write_run(folder, arm, seed, values, experiment="exp", metric="fd_cls3d"):
    run = folder / f"dit-{arm}-s{seed}"
    run.mkdir(parents=True)
    config = {
        "type": "config",
        "step": 0,
        "time": 1.0 + seed + (100 if experiment == "older" else 0),
        "run_id": run.name,
        "kind": "diffusion",
        "experiment": experiment,
        "model": {"name": "compact"},
        "train": {"steps": 100 * (len(values) - 1), "seed": seed},
        "autoencoder": {"variant": arm},
        "classes": ["a", "b", "c", "d"],
    }
    lines = [config] + [{"type": "eval", "step": 100 * i, metric: v} for i, v in enumerate(values)]
    lines.append({"type": "status", "step": lines[-1]["step"], "status": "completed"})
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))


def test_relative_difference_is_a_welch_interval_on_the_log_scale():
    a, b = [8.0, 8.5, 8.2], [10.0, 10.4, 10.2]
    r = relative_difference(a, b)
    la, lb = [math.log(v) for v in a], [math.log(v) for v in b]
    d = sum(la) / 3 - sum(lb) / 3
    va = sum((x - sum(la) / 3) ** 2 for x in la) / 2 / 3
    vb = sum((x - sum(lb) / 3) ** 2 for x in lb) / 2 / 3
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)
    half = student_t.ppf(0.975, df) * math.sqrt(va + vb)
    assert r["rel"] == pytest.approx(math.exp(d) - 1)
    assert r["lo"] == pytest.approx(math.exp(d - half) - 1)
    assert r["hi"] == pytest.approx(math.exp(d + half) - 1)
    assert r["df"] == pytest.approx(df)
    assert r["lo"] < r["rel"] < r["hi"] < 0  # a detectable decrease
    assert conclusion("se", **{k: r[k] for k in ("rel", "lo", "hi")}).startswith("se lower by")


def test_the_paired_interval_detects_what_the_seeds_share_and_welch_cannot():
    # Seeds differ a lot between themselves; within each seed, a is 2% below b.
    b = {0: 10.0, 1: 12.0, 2: 9.0}
    a = {0: 9.8, 1: 11.78, 2: 8.81}
    welch = relative_difference(list(a.values()), list(b.values()))
    assert welch["lo"] < 0 < welch["hi"]  # the spread between seeds hides it
    p = paired_difference(a, b)
    d = [math.log(a[s] / b[s]) for s in (0, 1, 2)]
    mean = sum(d) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / 2)
    half = student_t.ppf(0.975, 2) * sd / math.sqrt(3)
    assert p["n"] == 3 and p["df"] == 2
    assert p["rel"] == pytest.approx(math.exp(mean) - 1)
    assert p["lo"] == pytest.approx(math.exp(mean - half) - 1)
    assert p["hi"] == pytest.approx(math.exp(mean + half) - 1)
    assert p["hi"] < 0
    # only the seeds both arms have are paired; one pair gives no interval
    assert paired_difference({0: 9.0, 5: 1.0}, {0: 10.0, 6: 1.0})["n"] == 1
    assert paired_difference({0: 9.0}, {0: 10.0})["lo"] is None


def test_a_tie_is_never_called_a_win_and_one_seed_gives_no_interval():
    r = relative_difference([9.0, 11.0, 10.0], [10.5, 9.5, 10.0])
    assert r["lo"] < 0 < r["hi"]
    text = conclusion("se", r["rel"], r["lo"], r["hi"])
    assert text.startswith("no difference detectable at this budget")
    one = relative_difference([9.0], [10.0])
    assert one["rel"] == pytest.approx(-0.1) and one["lo"] is None
    assert (
        conclusion("se", one["rel"], None, None) == "one seed per arm: no interval, no conclusion"
    )
    assert relative_difference([0.0, 0.1], [0.2, 0.3])["rel"] is None


def test_steps_to_reach_takes_the_first_eval_step_per_seed():
    histories = [{0: 20.0, 100: 12.0, 200: 9.0}, {0: 20.0, 100: 9.5, 200: 8.0}, {0: 20.0}]
    r = steps_to_reach(histories, 10.0, "lower")
    assert (r["reached"], r["seeds"], r["mean"]) == (2, 3, 150.0)
    assert r["sd"] == pytest.approx(math.sqrt(2 * 50.0**2))
    up = steps_to_reach([{0: 0.1, 100: 0.6}], 0.5, "higher")
    assert up["mean"] == 100.0


def test_experiment_stats_per_arm_and_cli(tmp_path, capsys):
    curves = {
        "baseline": [[20, 12, 10], [21, 13, 11], [19, 12, 10.5]],
        "se": [[20, 10, 8], [21, 9.5, 8.2], [19, 10, 7.9]],
    }
    for arm, seeds in curves.items():
        for seed, values in enumerate(seeds):
            write_run(tmp_path, arm, seed, values)
    write_run(tmp_path, "se", 9, [50, 40, 30], experiment="older")  # another experiment
    # "older" is newer but has one arm only: the default is the newest with two arms
    name, runs = seed_stats.pick_experiment(seed_stats.read_runs(tmp_path))
    assert name == "exp" and len(runs) == 6
    name, runs = seed_stats.pick_experiment(seed_stats.read_runs(tmp_path), "exp")
    stats = seed_stats.experiment_stats(runs)
    base = stats["arms"]["baseline"]["metrics"]["fd_cls3d"]
    assert base["steps"] == [0, 100, 200] and base["final"]["values"] == [10, 11, 10.5]
    assert base["mean"][-1] == pytest.approx(10.5) and base["sd"][-1] == pytest.approx(0.5)
    reach = stats["arms"]["se"]["metrics"]["fd_cls3d"]["steps_to_reach"]
    assert reach["target"] == pytest.approx(10.5) and reach["mean"] == pytest.approx(100)
    (cmp,) = [c for c in stats["comparisons"] if c["a"] == "se" and c["b"] == "baseline"]
    assert cmp["hi"] < 0 and cmp["conclusion"].startswith("se lower by")
    # paired by seed: se's seed k against baseline's seed k (the older experiment's seed 9 is
    # not in this one)
    assert cmp["paired"] == paired_difference({0: 8, 1: 8.2, 2: 7.9}, {0: 10, 1: 11, 2: 10.5}) | {
        "conclusion": cmp["paired"]["conclusion"]
    }
    assert cmp["paired"]["n"] == 3 and cmp["paired"]["conclusion"].startswith("se lower by")
    md = seed_stats.markdown({"experiment": "exp", **stats}, "exp")
    assert "| paired by seed [95% t, log scale] |" in md
    assert f"| {cmp['paired']['conclusion']} (n=3) |" in md
    assert stats["chance"] == 0.25
    assert seed_stats.main(["--runs", str(tmp_path), "--experiment", "exp", "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["arms"]["se"]["seeds"] == [0, 1, 2]
    assert seed_stats.main(["--runs", str(tmp_path), "--experiment", "nope"]) == 2
    assert "no runs of experiment 'nope'" in capsys.readouterr().err
    assert seed_stats.main(["--runs", str(tmp_path / "missing")]) == 2
    assert "missing is not a folder of run folders" in capsys.readouterr().err


def test_the_grid_trains_every_arm_and_seed_then_writes_the_statistics(tmp_path):
    """The experiment command on tiny autoencoders: every run completes, a re-run skips them,
    and stats.json holds every arm with its seeds."""
    from diffusable.experiments import ae_protocol, diffusion_grid

    aes = tmp_path / "aes"
    assert (
        ae_protocol.main(
            ["--config", "tiny", "--out", str(aes), "--threads", "1", "--skip-eval"]
            + ["--pretrain-steps", "2", "--finetune-steps", "1"]
        )
        == 0
    )
    out = tmp_path / "grid"
    args = ["--aes", str(aes), "--ae-config", "tiny", "--out", str(out), "--preset", "tiny"]
    args += ["--seeds", "0", "1"]
    assert diffusion_grid.main(args) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert set(stats["arms"]) == {"baseline", "se", "se-spatial"}
    for arm in stats["arms"].values():
        assert arm["seeds"] == [0, 1]
        assert arm["metrics"]["fd_cls3d"]["steps"] == [0, 2, 4]
    grid = json.loads((out / "grid.json").read_text())
    assert len(grid["runs"]) == 6 and all(r["rc"] == 0 for r in grid["runs"])
    assert str(tmp_path) not in (out / "grid.json").read_text()  # portable commands
    before = (out / "dit-tiny-se-s1" / "events.jsonl").read_text()
    assert diffusion_grid.main(args) == 0  # everything complete: nothing re-run
    assert (out / "dit-tiny-se-s1" / "events.jsonl").read_text() == before
    with pytest.raises(SystemExit):
        diffusion_grid.main(args[:1] + [str(tmp_path / "missing")] + args[2:])
