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
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Optional

import torch

from . import distributed
from .checkpoint import load_checkpoint, save_checkpoint
from .events import EventLog, Progress
from .threads import set_threads


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
