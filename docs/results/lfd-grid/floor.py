"""Session 27: the `lfd` floor of a finished diffusion run whose evaluations predate it (logged in
`lfd_extractor` since commit da15322): train_diffusion's own reference (the same generators, the
same 544 training latents and eval noise) applied to held-out val latents, as many as the samples;
and its ladder (`lfd_reference`, logged since the commit after da15322): those latents blended with
Gaussian noise as the sampler's path at time t, (1 - t) z + t n, for t in features.LFD_LADDER. An
evaluation's noise-equivalent t (`lfd_t`) is where on its own space's ladder its `lfd` falls,
which reads alike across latent spaces whose `lfd` scales differ (table.py).

    PYTHONPATH=src/training /usr/bin/python3 docs/results/lfd-grid/floor.py RUN ... > floors.json

One run of each arm is enough: an arm's seeds share the reference (it does not depend on the seed).
"""

import json
import sys
from pathlib import Path

from diffusable.data.clips import ClipDataset
from diffusable.training.latent_cache import load_latents
from diffusable.threads import set_threads
from diffusable.training.train_diffusion import DiffusionTrainConfig, eval_draws, lfd_reference


def floor_of(run: Path) -> dict:
    config = json.loads((run / "events.jsonl").read_text().splitlines()[0])
    fields = DiffusionTrainConfig.__dataclass_fields__
    cfg = DiffusionTrainConfig(**{k: v for k, v in config["train"].items() if k in fields})
    cache = Path(config["latent_cache"])
    latents, _, info = load_latents(cache, "train")
    n_clips = len(ClipDataset(Path(info["data"]), "train"))
    _, eval_noise, val = eval_draws(cfg, n_clips, latents.shape[1:], cache)
    latent_fd, floor = lfd_reference(latents, val["x0"], eval_noise, cfg)
    ladder = [[t, v] for t, v in floor.pop("ladder").items()]  # as the trainer logs it
    return {"run": run.name, **latent_fd.describe(), **floor, "ladder": ladder}


if __name__ == "__main__":
    set_threads(1)
    print(json.dumps([floor_of(Path(r)) for r in sys.argv[1:]], indent=1))
