"""latent_fd.py's records as one table: per arm (mean ± sd over the denoiser seeds) `lfd`, its
ratio to the baseline paired by seed, the token FD ratio, and the noise-equivalent t: the blend
(1 - t) z + t n of held-out real latents (from --check) whose `lfd` the samples' equals,
interpolated linearly, so that arms whose latent spaces scale `lfd` differently read alike.

    PYTHONPATH=src/training /usr/bin/python3 docs/results/se64-gap/lfd_table.py \
        docs/results/se64-gap/latent-fd.json docs/results/grid-gpu-stage2/latent-fd.json \
        docs/results/shipped-latent-fd/latent-fd.json
"""

import json
import statistics as st
import sys
from pathlib import Path

from diffusable.evaluation.features import noise_equivalent_t


def ms(v):
    return f"{st.mean(v):.3f} ± {st.stdev(v):.3f}"


def main(paths) -> None:
    print(
        "| record | arm | `lfd` | / baseline | token FD / baseline | noise-equivalent t | floor |"
    )
    print("|---|---|---|---|---|---|---|")
    for path in map(Path, paths):
        rows = json.loads(path.read_text())["rows"]
        check = json.loads(path.with_name("latent-fd-check.json").read_text())["rows"]
        by = {}
        for r in rows:
            by.setdefault(r["arm"], {})[r["seed"]] = r
        base = by["baseline"]
        for arm, seeds in by.items():
            ladder = {c["t"]: c["lfd"] for c in check if c["arm"] == arm}
            lfd = [seeds[s]["lfd"] for s in sorted(seeds)]
            t_eq = [noise_equivalent_t(v, ladder) for v in lfd]
            ratio = tok = ""
            if arm != "baseline":
                ratio = ms([seeds[s]["lfd"] / base[s]["lfd"] for s in sorted(seeds)])
                tok = ms([seeds[s]["tok_fd"] / base[s]["tok_fd"] for s in sorted(seeds)])
            print(
                f"| {path.parent.name} | {arm} | {ms(lfd)} | {ratio} | {tok} | {ms(t_eq)} "
                f"| {ladder[0.0]:.3f} |"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
