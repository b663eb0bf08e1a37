"""The diffusability experiment: a denoiser on each latent space (arm) with several seeds, the
same steps, batch, schedule and eval noise for every run, then the statistics over seeds.

    PYTHONPATH=src/training /usr/bin/python3 -m diffusable.experiments.diffusion_grid \\
        --aes runs/protocol-k3 --out runs/grid-k3 --preset small --parallel 2

Run folders are `<out>/dit-<config>-<arm>-s<seed>`; every run is resumable and a completed one
is skipped, so the command can be re-run after an interruption. Each run gets one thread (the
grid, not the run, uses the cores). At the end `<out>/stats.json` and `<out>/stats.md`
(diffusable.experiments.seed_stats) and `<out>/grid.json` (commands, wall times, load) are written.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict

from .. import paths
from .compare_runs import run_completed
from ..events import format_seconds, portable_path
from ..models.scale_equivariance import VARIANT_MODES
from .seed_stats import experiment_stats, markdown, read_runs


@dataclass(frozen=True)
class GridPreset:
    config: str  # denoiser config (denoiser.DENOISER_CONFIGS)
    # train_diffusion flags shared by every run of the grid
    flags: Dict[str, str] = field(default_factory=dict)


GRID_PRESETS: Dict[str, GridPreset] = {
    "tiny": GridPreset("tiny", {"steps": "4", "eval-every": "2"}),
    # 2 CPU cores, 3 arms x 3 seeds in about an hour: 300 steps of batch 32 (the shipped
    # denoisers' recipe, shortened) at ~0.5 steps/s per core, evaluated every 100 steps on 128
    # samples of 12 Euler steps each.
    "small": GridPreset(
        "compact",
        {
            "steps": "300",
            "lr": "4e-4",
            "warmup": "50",
            "eval-every": "100",
            "sample-steps": "12",
            "eval-samples": "128",
        },
    ),
    # The conv VAE's latents (issue 21, part 4): the shipped denoisers' learning rate and warm-up,
    # 400 steps so that 9 runs fit one 3-hour session on 2 shared cores (~30 min a run with 4
    # evaluations); the shipped runs' loss still fell at 2400 steps, so every curve is moving.
    "conv": GridPreset(
        "compact",
        {
            "steps": "400",
            "lr": "7e-4",
            "warmup": "100",
            "eval-every": "100",
            "sample-steps": "12",
            "eval-samples": "128",
        },
    ),
    # The same recipe five times longer, on the shipped (H200) autoencoders' latents: the 400-step
    # grid compared denoisers whose samples were colour fields (class score 2x chance). bf16
    # autocast (the same model to the fourth digit, 2x per step on a free core) pays for 2000
    # steps; evaluations every 500 steps (each costs about as much as 200 training steps) so that
    # 2 arms x 3 seeds fit one session on 2 cores, and step 1000 (the "half the steps" mark of
    # the goal) is one of them.
    "conv-long": GridPreset(
        "compact",
        {
            "steps": "2000",
            "lr": "7e-4",
            "warmup": "100",
            "eval-every": "500",
            "sample-steps": "12",
            "eval-samples": "128",
            "cpu-bf16": "true",
        },
    ),
}
# The same recipe with the 2.3x larger denoiser: whether capacity, not steps, bounds compact's
# samples (compact's conv-long grid is the reference, seed by seed).
GRID_PRESETS["conv-long-medium"] = GridPreset("medium", GRID_PRESETS["conv-long"].flags)


def run_name(config: str, arm: str, seed: int) -> str:
    return f"dit-{config}-{arm}-s{seed}"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="Denoisers on each latent space, several seeds.")
    ap.add_argument("--aes", required=True, help="folder holding ae-<ae-config>-<arm> runs")
    ap.add_argument("--ae-config", default="small", help="autoencoder config of those runs")
    ap.add_argument("--out", required=True, help="folder of the grid's run folders")
    ap.add_argument("--preset", default="small", choices=sorted(GRID_PRESETS))
    ap.add_argument("--arms", nargs="+", default=["baseline", "se", "se-spatial"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--parallel", type=int, default=2, help="runs at once (one thread each)")
    ap.add_argument("--data", default="procedural")
    ap.add_argument("--experiment", help="experiment name (default: the out folder's name)")
    args = ap.parse_args(argv)
    for arm in args.arms:
        if arm not in VARIANT_MODES:
            ap.error(f"unknown arm {arm!r}; choose from {', '.join(VARIANT_MODES)}")
    for arm in args.arms:
        ae = Path(args.aes) / f"ae-{args.ae_config}-{arm}"
        if not ae.is_dir():
            ap.error(f"no autoencoder run for arm {arm!r}: {ae} is not a folder")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    preset = GRID_PRESETS[args.preset]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    experiment = args.experiment or out.name
    # seed-major order: an interrupted grid has whole seeds of every arm, not one arm's seeds
    jobs = []
    for seed in args.seeds:
        for arm in args.arms:
            name = run_name(preset.config, arm, seed)
            cmd = [sys.executable, "-m", "diffusable.training.train_diffusion"]
            cmd += ["--ae", str(Path(args.aes) / f"ae-{args.ae_config}-{arm}")]
            cmd += ["--config", preset.config, "--out", str(out / name), "--data", args.data]
            cmd += ["--threads", "1", "--seed", str(seed), "--experiment", experiment]
            for k, v in preset.flags.items():
                cmd += [f"--{k}", v]
            jobs.append({"id": name, "arm": arm, "seed": seed, "cmd": cmd})
    todo = [j for j in jobs if not run_completed(out / j["id"])]
    print(
        f"diffusion_grid: {len(jobs)} runs ({len(jobs) - len(todo)} already complete), "
        f"{args.parallel} at a time",
        flush=True,
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = str(paths.SOURCE_ROOT)
    t0, running, records, failed = time.time(), [], {}, []
    queue = list(todo)
    while queue or running:
        while queue and len(running) < args.parallel:
            job = queue.pop(0)
            log = open(out / f"{job['id']}.log", "a")
            proc = subprocess.Popen(job["cmd"], stdout=log, stderr=subprocess.STDOUT, env=env)
            running.append((job, proc, log, time.time()))
        time.sleep(2)
        for item in list(running):
            job, proc, log, started = item
            if proc.poll() is None:
                continue
            running.remove(item)
            log.close()
            wall = time.time() - started
            records[job["id"]] = {"wall_s": wall, "rc": proc.returncode, "load": os.getloadavg()}
            done = len(records)
            eta = (time.time() - t0) / done * (len(todo) - done)
            state = "done" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
            print(
                f"[{done}/{len(todo)}] {job['id']} {state} in {format_seconds(wall)}, "
                f"ETA {format_seconds(eta)}",
                flush=True,
            )
            if proc.returncode != 0:
                failed.append(job["id"])
    grid = {
        "experiment": experiment,
        "preset": {"name": args.preset, **asdict(preset)},
        "aes": portable_path(Path(args.aes)),
        "arms": args.arms,
        "seeds": args.seeds,
        "parallel": args.parallel,
        "wall_s": time.time() - t0,
        "runs": [
            {
                "id": j["id"],
                "arm": j["arm"],
                "seed": j["seed"],
                "command": " ".join(
                    portable_path(Path(c)) if os.path.isabs(c) else c for c in j["cmd"][1:]
                ),
                **records.get(j["id"], {}),
            }
            for j in jobs
        ],
        "cpu_count": os.cpu_count(),
    }
    prev = out / "grid.json"
    if prev.is_file():  # keep the wall times of runs an earlier invocation made
        old = {r["id"]: r for r in json.loads(prev.read_text()).get("runs", [])}
        for r in grid["runs"]:
            if "wall_s" not in r and "wall_s" in old.get(r["id"], {}):
                r.update(
                    {k: old[r["id"]][k] for k in ("wall_s", "rc", "load") if k in old[r["id"]]}
                )
    prev.write_text(json.dumps(grid, indent=1) + "\n")
    if failed:
        print(f"diffusion_grid: {len(failed)} runs failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    runs = [r for r in read_runs(out) if r["experiment"] == experiment]
    stats = {"experiment": experiment, **experiment_stats(runs)}
    (out / "stats.json").write_text(json.dumps(stats, indent=1) + "\n")
    md = markdown(stats, experiment)
    (out / "stats.md").write_text(md)
    print(md, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
