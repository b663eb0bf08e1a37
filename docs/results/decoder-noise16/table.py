"""The sweeps of sample.sh as one table: each shipped denoiser through its own decoder and the
noise-trained one, mean +- sd over the three noise seeds, and the paired change per seed."""

import glob
import json
import statistics as st
from pathlib import Path

here = Path(__file__).parent
rows = {}
for f in sorted(glob.glob(str(here / "sweeps" / "*.json"))):
    arm, seed, dec = Path(f).stem.split("-", 2)
    rows.setdefault((arm, dec), []).append(json.loads(Path(f).read_text())["rows"][0])


def ms(v):
    return f"{st.mean(v):.3f} ± {st.stdev(v):.3f}"


HEAD = "arm | decoder | class score | `fd_cls3d` | grid ratio | paired: class score change"
print(f"| {HEAD} | `fd_cls3d` ratio |")
print("|---|---|---|---|---|---|---|")
for (arm, dec), v in sorted(rows.items()):
    own = rows[(arm, "own")]
    paired = ""
    if dec != "own":
        dc = [b["class_score"] - a["class_score"] for a, b in zip(own, v)]
        r = [b["fd_cls3d"] / a["fd_cls3d"] for a, b in zip(own, v)]
        paired = f"{ms(dc)} | {ms(r)}"
    else:
        paired = " | "
    print(
        f"| {arm} | {dec} | {ms([x['class_score'] for x in v])} | "
        f"{ms([x['fd_cls3d'] for x in v])} | {ms([x['grid_ratio'] for x in v])} | {paired} |"
    )
