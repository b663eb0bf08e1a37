"""memorization: nearest-training-clip PSNR, and the share of samples closer than new real clips."""

import torch

from diffusable.experiments.memorization import copy_share, nearest_psnr
from diffusable.evaluation.metrics import psnr


def test_nearest_psnr_is_the_psnr_to_the_closest_clip():
    g = torch.Generator().manual_seed(0)
    pool = torch.rand(5, 3, 2, 4, 4, generator=g) * 2 - 1
    queries = torch.rand(3, 3, 2, 4, 4, generator=g) * 2 - 1
    got = nearest_psnr(queries, pool, batch=2)
    for i, q in enumerate(queries):
        want = psnr(q[None].expand_as(pool), pool).max()
        assert torch.allclose(got[i], want, atol=1e-3)


def test_copies_of_training_clips_count_and_new_clips_do_not():
    g = torch.Generator().manual_seed(1)
    train = torch.rand(40, 3, 2, 4, 4, generator=g) * 2 - 1
    val = torch.rand(40, 3, 2, 4, 4, generator=g) * 2 - 1  # new clips of the same "data"
    fresh = torch.rand(20, 3, 2, 4, 4, generator=g) * 2 - 1
    copies = train[:20] + 0.01 * torch.randn(20, 3, 2, 4, 4, generator=g)
    assert copy_share(copies, val, train)["share_above_val_p95"] == 1.0
    assert copy_share(fresh, val, train)["share_above_val_p95"] <= 0.15


def test_cli_names_a_bad_dataset_in_one_line(tmp_path, capsys):
    from diffusable.experiments.memorization import main

    assert main([str(tmp_path), "--data", "procedural:0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "procedural:N" in err
    assert main([str(tmp_path), "--data", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("memorization: ")
