"""latent_cache: several runs that build one cache at once (a grid's seeds start together) all
get it whole."""

import multiprocessing as mp
from pathlib import Path

import numpy as np

from diffusable.training import latent_cache, train_ae
from toy_data import make_toy_dataset

BUILDERS = 3


def _build(run, data, barrier, results) -> None:
    # every builder encodes, then waits for the others, so that all of them write the cache's
    # files at the same moment (as three grid seeds on one machine did, and one of them failed)
    concatenate = np.concatenate

    def wait_then_concatenate(*args, **kwargs):
        barrier.wait(timeout=60)
        return concatenate(*args, **kwargs)

    latent_cache.np.concatenate = wait_then_concatenate
    try:
        results.put(str(latent_cache.build_latent_cache(run, data)))
    except Exception as err:  # noqa: BLE001 - reported to the test, which fails on it
        results.put(f"error: {err!r}")


def test_builders_that_write_at_once_all_succeed_and_leave_no_temporary_file(tmp_path):
    data = make_toy_dataset(tmp_path / "toy")
    run = tmp_path / "ae"
    flags = ["--config", "tiny", "--data", str(data), "--threads", "1", "--steps", "2"]
    assert train_ae.main(flags + ["--variant", "baseline", "--out", str(run)]) == 0
    ctx = mp.get_context("fork")  # the children inherit the imported modules: no re-import
    barrier, results = ctx.Barrier(BUILDERS), ctx.Queue()
    procs = [
        ctx.Process(target=_build, args=(run, str(data), barrier, results)) for _ in range(BUILDERS)
    ]
    for p in procs:
        p.start()
    out = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(p.exitcode == 0 for p in procs)
    assert len(set(out)) == 1 and not out[0].startswith("error"), out
    cache = Path(out[0])
    # the cache's files and nothing else: no process's temporary file is left behind
    names = sorted(f.name for f in cache.iterdir())
    splits = [f"{s}.{kind}.npy" for s in ("train", "val") for kind in ("labels", "latents")]
    assert names == sorted(["latents.json"] + splits), names
    for split in ("train", "val"):
        latents, labels, info = latent_cache.load_latents(cache, split)
        assert len(latents) == len(labels) == info["splits"][split]
        assert bool(latents.isfinite().all())
