"""The skeleton both trainers share: set-up, resume, the step log, checkpoints, finish.

train_ae.py and train_diffusion.py differ in their data, model and step; everything around
those is here, so the two follow the same rules: rank 0 alone writes events and checkpoints,
a run folder resumes from checkpoints/last.pt, one `train` event (running means, lr, steps/s,
ETA) every log_every steps and a progress line on stderr, the run's status at start, resume and
completion.
"""

from __future__ import annotations

import faulthandler
import io
import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch

from . import distributed
from ..atomic_file import atomic_write_text
from ..models.checkpoint import load_checkpoint, save_checkpoint
from ..events import EventLog, Progress
from ..threads import set_threads


@dataclass
class LoopConfig:
    """What the skeleton and every training loop read of a trainer's config: the step count, the
    optimiser (AdamW with warm-up and cosine), the EMA, the precision, the seed and the log and
    evaluation cadence. Each trainer's config extends it and sets its own defaults; all of it
    goes into the run's config event and its checkpoints."""

    steps: int = 3000
    batch_size: int = 8  # per process
    lr: float = 1e-3
    warmup: int = 100
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    # bf16 autocast of the training step on CPU (loop_utils.autocast_for); CUDA always uses it
    cpu_bf16: bool = False
    log_every: int = 50
    eval_every: int = 500


@dataclass
class Run:
    """One trainer process's place in a run: where it writes, on which device, as which rank."""

    out: Path
    dist: distributed.DistInfo
    events: EventLog

    @property
    def device(self) -> torch.device:
        return self.dist.device

    @property
    def is_main(self) -> bool:
        return self.dist.is_main

    @property
    def run_id(self) -> str:
        return self.out.name

    @property
    def ckpt_path(self) -> Path:
        return self.out / "checkpoints" / "last.pt"

    def resume(self, restore: Callable[[Dict], int]) -> int:
        """The step to continue from: restore(state) loads a checkpoint and returns its step;
        0 when the run is new (the caller then writes its config event and calls start)."""
        if not self.ckpt_path.exists():
            return 0
        step = restore(load_checkpoint(self.ckpt_path))
        self.events.write("status", step=step, status="resumed")
        return step

    def start(self) -> None:
        self.events.write("status", step=0, status="started")

    def save(self, step: int, state: Dict, final: bool = False) -> None:
        if not self.is_main:
            return
        save_checkpoint(self.ckpt_path, state)
        path = str(self.ckpt_path.relative_to(self.out))
        self.events.write("checkpoint", step=step, path=path, final=final)

    def complete(self, step: int, **figures) -> None:
        self.events.write("status", step=step, status="completed", **figures)

    def close(self) -> None:
        distributed.cleanup()


def start_run(args) -> Run:
    """DDP set-up (under torchrun), CPU threads, and the run folder's event log."""
    # `kill -USR1 <pid>` prints every thread's Python stack to stderr: how to see where a stuck
    # rank waits without stopping it. (Not where stderr is no file, as under pytest's capture.)
    try:
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    except (io.UnsupportedOperation, AttributeError, ValueError):
        pass
    info = distributed.setup(args.device)
    if info.device.type == "cpu":
        set_threads(args.threads)
    else:
        # Fixed shapes every step: let cuDNN pick its fastest convolutions once.
        torch.backends.cudnn.benchmark = True
    out = Path(args.out)
    return Run(out, info, EventLog(out / "events.jsonl", enabled=info.is_main))


@dataclass
class StepLog:
    """Running means of each step's scalars, written as one `train` event every `every` steps."""

    run: Run
    total: int
    every: int
    start_step: int
    progress: Progress = field(init=False)
    sums: Dict[str, float] = field(default_factory=dict)
    n: int = 0
    t_last: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.progress = Progress(self.total, self.start_step, enabled=self.run.is_main)

    def add(
        self,
        step: int,
        scalars: Dict[str, float],
        last: bool,
        shown: Optional[Dict[str, str]] = None,
        **fields,
    ) -> None:
        """Add step `step`'s scalars; at a logging step write the event (with `fields`) and a
        progress line showing `shown` ({label: scalar name}, default: loss)."""
        for k, v in scalars.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.n += 1
        if step % self.every and not last:
            return
        means = {k: v / self.n for k, v in self.sums.items()}
        now = time.time()
        rate = self.n / max(now - self.t_last, 1e-9)
        self.run.events.write(
            "train",
            step=step,
            steps_per_s=rate,
            eta_s=(self.total - step) / max(rate, 1e-9),
            **fields,
            **means,
        )
        labels = shown or {"loss": "loss"}
        self.progress.line(step, **{label: means[key] for label, key in labels.items()})
        self.sums, self.n, self.t_last = {}, 0, now


def plan_steps(
    step: int,
    per_step: float,
    used_s: float,
    seconds: float,
    reserve: float,
    configured: int,
    eval_s: float = 0.0,
    evals_left: int = 1,
) -> int:
    """The step count that ends a run within `seconds`: `used_s` are spent at `step`, each step
    takes `per_step`, and the room kept is the larger of `reserve` of the budget and the
    evaluations still to come at the longest one seen (plus a fifth: on the first lease the
    denoisers' evaluations outran a 12% reserve and the runs were cut 18 steps short)."""
    spare = max(seconds * reserve, 1.2 * eval_s * evals_left)
    left = seconds - used_s - spare
    return min(configured, step + max(0, int(left / per_step)))


def _process_started() -> float:
    """Wall-clock time this process started (Linux /proc), else now: a budget covers start-up."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.time()


class StepBudget:
    """--time-budget: a run sized by wall time instead of steps, on hardware whose speed is not
    known in advance (a borrowed GPU). After `skip` warm-up steps it times `measure` more, then
    fixes the run's step count once, so that the whole process (start-up, evaluations and the
    final save included, `reserve` of the budget kept for them) ends within the budget; the
    learning-rate schedule then runs its usual course over that count. The count never exceeds
    the configured one. Runs that must take the same number of steps (the fine-tunes, whose only
    difference must be the SE term) pass --budget-sync DIR:N: each writes its own count there,
    waits for its N peers, and all take the smallest."""

    def __init__(
        self,
        seconds: float,
        evals: int = 0,
        sync: str = "",
        skip: int = 10,
        measure: int = 30,
        reserve: float = 0.12,
    ):
        self.seconds, self.evals, self.skip, self.measure, self.reserve = (
            seconds,
            evals,
            skip,
            measure,
            reserve,
        )
        self.t_start = _process_started()
        self.t_skip: Optional[float] = None
        self.sync_dir, self.peers = None, 1
        if sync:
            folder, _, n = sync.rpartition(":")
            if not folder or not n.isdigit() or int(n) < 1:
                raise ValueError(f"--budget-sync must be DIR:N, got {sync!r}")
            self.sync_dir, self.peers = Path(folder), int(n)
        self.done = False
        self.refit_done = False
        self.eval_s = 0.0  # the longest evaluation seen (note_eval)
        # Runs sharing a device start unevenly: time them over a longer window.
        self.measure = measure * (3 if self.peers > 1 else 1)

    @staticmethod
    def from_args(args) -> Optional["StepBudget"]:
        if not getattr(args, "time_budget", 0):
            return None
        return StepBudget(args.time_budget, args.budget_evals, args.budget_sync)

    def after_step(self, step: int, start_step: int, configured: int, run_id: str) -> Optional[int]:
        """Call after each step (`step` = steps done). Returns the fixed step count once (and,
        for a run without peers, once more at half its time: the speed of its first steps may
        be that of a busier device, as beside the preflight)."""
        if self.done:
            return self._refit(step, configured)
        done_here = step - start_step
        if done_here == self.skip:
            self.t_skip = time.time()
        if done_here < self.skip + self.measure or self.t_skip is None:
            return None
        self.done = True
        now = time.time()
        per_step = (now - self.t_skip) / self.measure
        total = plan_steps(
            step,
            per_step,
            now - self.t_start,
            self.seconds,
            self.reserve,
            configured,
            self.eval_s,
            max(1, self.evals),
        )
        total = self._agree(run_id, max(total, step + 1))
        self.per_step = per_step
        self.fixed_at = (step, now)
        return total

    def _refit(self, step: int, configured: int) -> Optional[int]:
        now = time.time()
        if self.peers > 1 or self.refit_done or now - self.t_start < 0.5 * self.seconds:
            return None
        self.refit_done = True
        step0, t0 = self.fixed_at
        if step <= step0:
            return None
        self.per_step = (now - t0) / (step - step0)
        return max(
            step + 1,
            plan_steps(
                step,
                self.per_step,
                now - self.t_start,
                self.seconds,
                self.reserve,
                configured,
                self.eval_s,
                max(1, self.evals // 2),
            ),
        )

    def note_eval(self, seconds: float) -> None:
        """An evaluation took this long: the budget keeps room for the ones still to come."""
        self.eval_s = max(self.eval_s, seconds)

    def _agree(self, run_id: str, total: int) -> int:
        if self.sync_dir is None:
            return total
        self.sync_dir.mkdir(parents=True, exist_ok=True)
        mine = self.sync_dir / f"{run_id}.json"
        atomic_write_text(mine, json.dumps({"steps": total}))
        deadline = time.time() + 120
        while True:
            found: List[int] = [
                json.loads(p.read_text())["steps"] for p in self.sync_dir.glob("*.json")
            ]
            if len(found) >= self.peers or time.time() > deadline:
                return min(found)
            time.sleep(0.2)

    def apply(self, run: "Run", log: "StepLog", cfg: LoopConfig, step: int, total: int) -> None:
        """Make `total` the run's step count: config, progress line, evaluations, event."""
        cfg.steps = total
        if self.evals:
            cfg.eval_every = self.eval_every(total, cfg.eval_every)
            if hasattr(cfg, "ckpt_every"):
                cfg.ckpt_every = cfg.eval_every
        log.total = total
        log.progress.total = total
        run.events.write(
            "budget",
            step=step,
            steps=total,
            seconds=self.seconds,
            s_per_step=round(self.per_step, 5),
            eval_every=cfg.eval_every,
            peers=self.peers,
        )

    def update(
        self, run: "Run", log: "StepLog", cfg: LoopConfig, step: int, start_step: int, run_id: str
    ):
        """after_step, and apply what it fixes; the new count or None (each trainer's hook)."""
        total = self.after_step(step, start_step, cfg.steps, run_id)
        if total is not None:
            self.apply(run, log, cfg, step, total)
        return total

    def eval_every(self, total: int, current: int) -> int:
        """With --budget-evals K: K evaluations evenly over the fixed count."""
        return max(1, total // self.evals) if self.evals else current
