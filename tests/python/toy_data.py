"""A two-class toy clip dataset at the tiny configs' 32x32x9, for tests that train or encode."""

import numpy as np

from diffusable.data.clips import write_dataset_meta, write_shard


def make_toy_dataset(root):
    """Two classes of moving squares at the tiny config's 32x32x9."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 2)):
        clips = np.zeros((n, 9, 32, 32, 3), np.uint8)
        labels = np.arange(n) % 2
        for i in range(n):
            x0, y0 = rng.integers(0, 16, 2)
            for t in range(9):
                x = x0 + t * (1 if labels[i] else -1) % 16
                clips[i, t, y0 : y0 + 10, x : x + 10, labels[i]] = 255
        write_shard(root, split, 0, clips, labels)
    write_dataset_meta(
        root,
        {
            "name": "toy",
            "classes": ["left", "right"],
            "frames": 9,
            "height": 32,
            "width": 32,
            "fps": 8,
            "splits": {
                "train": {"shards": ["train-00000"], "count": 6},
                "val": {"shards": ["val-00000"], "count": 2},
            },
        },
    )
    return root
