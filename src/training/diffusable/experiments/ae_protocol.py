"""The paper's protocol in one command: pre-train one AE, then fine-tune it three ways.

    PYTHONPATH=src/training python3 -m diffusable.experiments.ae_protocol \
        --config small --out runs/protocol
    # fine-tunes whose decoder's linear map reads 3x3 latent tokens, SE at weight 1:
    ... --finetune-flags "--decoder-linear-kernel 3 --se-weight 1 --linear-lr-scale 1"

Stages, each its own run folder under --out (so each resumes from its own last checkpoint when
the command is run again, and a finished stage is skipped):
  1. `ae-<config>-pretrain`: the architecture's fresh start (the PCA-residual model from the
     linear code, the conv VAE from scratch), no SE term (or --pretrain: a finished run);
  2. `ae-<config>-baseline`, `ae-<config>-se`, `ae-<config>-se-spatial`: fine-tunes of the
     pre-trained EMA weights with identical steps, batches, seeds and noise, differing only in the
     SE term (weight 0; space and time modes; space modes only). With --parallel they run at the
     same time, each on its share of the threads;
  3. `ae_eval` of the three fine-tunes (and the pre-train) beside the linear code, written to
     `<out>/ae-eval/`.
Progress: each trainer prints steps/s and ETA; this command prints one line per stage with its
wall time, and `<out>/protocol.json` keeps every stage's command and wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

from .. import paths
from .compare_runs import run_completed

FINETUNES = ("baseline", "se", "se-spatial")


def _python() -> List[str]:
    return [sys.executable, "-m"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Pre-train one AE, fine-tune baseline/se/se-spatial.")
    ap.add_argument("--config", default="small", help="autoencoder config: tiny | small | base")
    ap.add_argument("--out", required=True, help="folder of the protocol's run folders")
    ap.add_argument("--data", default="procedural")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads in all (0 = all cores)")
    ap.add_argument("--pretrain-steps", type=int, default=0, help="override the preset's steps")
    ap.add_argument("--finetune-steps", type=int, default=0, help="override the preset's steps")
    ap.add_argument("--parallel", action="store_true", help="run the three fine-tunes at once")
    ap.add_argument("--no-real", action="store_true", help="ae_eval without the real-video set")
    ap.add_argument("--skip-eval", action="store_true")
    ap.add_argument(
        "--pretrain",
        help="a finished train_ae run folder to use as the pre-train (stage 1 is then skipped)",
    )
    ap.add_argument(
        "--finetune-flags",
        default="",
        help='train_ae flags for the three fine-tunes only, e.g. "--decoder-linear-kernel 3 '
        '--se-weight 1" (flags after the known ones go to every stage)',
    )
    args, extra = ap.parse_known_args(argv)
    try:
        finetune_flags = shlex.split(args.finetune_flags)
    except ValueError as err:
        ap.error(f"--finetune-flags {args.finetune_flags!r}: {err}")
    if args.pretrain and not run_completed(Path(args.pretrain)):
        print(f"ae_protocol: --pretrain {args.pretrain} is not a finished run", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record_path = out / "protocol.json"
    record: Dict = json.loads(record_path.read_text()) if record_path.is_file() else {}
    threads = args.threads or os.cpu_count() or 1
    env = dict(os.environ)
    env["PYTHONPATH"] = str(paths.SOURCE_ROOT) + os.pathsep + env.get("PYTHONPATH", "")

    def trainer(run: Path, variant: str, init: str, steps: int, n_threads: int) -> List[str]:
        """A train_ae command; init None is the architecture's fresh start (the pre-train)."""
        cmd = _python() + [
            "diffusable.training.train_ae",
            "--config",
            args.config,
            "--variant",
            variant,
        ]
        cmd += (["--init", init] if init else []) + ["--out", str(run), "--data", args.data]
        cmd += ["--device", args.device, "--threads", str(n_threads)]
        if steps:
            cmd += ["--steps", str(steps)]
        return cmd + extra + (finetune_flags if init else [])

    def stage(name: str, cmds: List[List[str]]) -> int:
        t0 = time.time()
        print(f"ae_protocol: {name}: starting {len(cmds)} run(s)", file=sys.stderr, flush=True)
        procs = [subprocess.Popen(c, env=env) for c in cmds]
        codes = [p.wait() for p in procs]
        wall = time.time() - t0
        entry = record.setdefault(name, {"commands": [], "wall_s": 0.0})
        entry["commands"] = [" ".join([Path(cmd[0]).name, *cmd[1:]]) for cmd in cmds]
        entry["wall_s"] = round(entry["wall_s"] + wall, 1)
        entry["threads"] = threads
        record_path.write_text(json.dumps(record, indent=1) + "\n")
        print(f"ae_protocol: {name}: exit {codes} after {wall:.0f} s", file=sys.stderr, flush=True)
        return max(codes)

    pre = Path(args.pretrain) if args.pretrain else out / f"ae-{args.config}-pretrain"
    if not run_completed(pre):
        code = stage("pretrain", [trainer(pre, "baseline", None, args.pretrain_steps, threads)])
        if code:
            return code
    # A committed run folder (docs/results/runs) has only its fp16 EMA weights, not last.pt.
    full = pre / "checkpoints" / "last.pt"
    init = str(full if full.is_file() else pre / "checkpoints" / "ema-fp16.pt")
    runs = {v: out / f"ae-{args.config}-{v}" for v in FINETUNES}
    todo = [v for v in FINETUNES if not run_completed(runs[v])]
    if args.parallel and todo:
        share = max(1, threads // len(todo))
        cmds = [trainer(runs[v], v, init, args.finetune_steps, share) for v in todo]
        code = stage("finetune", cmds)
        if code:
            return code
    else:
        for v in todo:
            code = stage(f"finetune-{v}", [trainer(runs[v], v, init, args.finetune_steps, threads)])
            if code:
                return code
    if args.skip_eval:
        return 0
    result = out / "ae-eval" / "ae_eval.json"
    ckpts = [Path(init)] + [runs[v] / "checkpoints" / "last.pt" for v in runs]
    if result.is_file() and all(result.stat().st_mtime > c.stat().st_mtime for c in ckpts):
        return 0  # evaluated since the last checkpoint changed
    cmd = _python() + ["diffusable.experiments.ae_eval", "--out", str(out / "ae-eval"), "--events"]
    cmd += ["--data", args.data, "--threads", str(threads)]
    cmd += ["--ckpt", f"pretrain={init}"]
    cmd += [
        arg for v in FINETUNES for arg in ("--ckpt", f"{v}={runs[v] / 'checkpoints' / 'last.pt'}")
    ]
    if args.no_real:
        cmd.append("--no-real")
    return stage("ae_eval", [cmd])


if __name__ == "__main__":
    sys.exit(main())
