import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src" / "training")

# Page faults taken by five training-like steps (two convolutions on a 32 MB batch, forward and
# backward) after three to warm up, in a fresh process (mallopt is process-wide and cannot be
# undone), after set_threads with or without keep_memory.
PROBE = """
import resource, sys
import torch
import torch.nn.functional as F
from diffusable.threads import set_threads

set_threads(1, keep_memory=sys.argv[1] == "keep")
w = torch.randn(32, 32, 3, 3, requires_grad=True)
x = torch.randn(64, 32, 64, 64)


def step():
    h = F.conv2d(F.silu(x), w, padding=1)
    F.conv2d(h, w, padding=1).square().mean().backward()


for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.split()[-1])


def test_freed_memory_is_kept_so_the_next_step_does_not_fault_it_back_in():
    default, kept = _faults("default"), _faults("keep")
    # glibc's default unmaps every freed block over 32 MB, and each step faults its activations
    # back in, 4 kB at a time (measured: about 780k faults in five steps; kept: 16k).
    assert default > 100_000
    assert kept < default / 10
