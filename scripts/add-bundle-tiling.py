"""Adds trained_sizes and tiling (docs/bundle.md "Tiling") to manifests exported before the export
wrote them, computed from each manifest's autoencoder_config exactly as the export computes them
(diffusable.export.ae_bundle.bundle_sizes). Every other byte of the manifest is kept: the two
fields are inserted as text after "latent_channels". Run once per bundle; a manifest that has them is left
alone.

    PYTHONPATH=src/training /usr/bin/python3 scripts/add-bundle-tiling.py \
        models/small-se/manifest.json
"""

import json
import sys
from pathlib import Path

from diffusable.models import autoencoders
from diffusable.export.ae_bundle import bundle_sizes


def add_sizes(text: str) -> str:
    manifest = json.loads(text)
    if "trained_sizes" in manifest or "tiling" in manifest:
        return text
    cfg = autoencoders.config_from_dict(manifest["autoencoder_config"])
    anchor = f'\n  "latent_channels": {manifest["latent_channels"]},\n'
    if text.count(anchor) != 1:
        raise SystemExit('cannot find one top-level "latent_channels" line')
    fields = "".join(
        f'  "{key}": {json.dumps(value, indent=2)},\n'.replace("\n  ", "\n    ")
        .replace("\n}", "\n  }")
        .replace("\n]", "\n  ]")
        for key, value in bundle_sizes(cfg).items()
    )
    out = text.replace(anchor, anchor + fields)
    again = json.loads(out)
    assert {k: v for k, v in again.items() if k not in ("trained_sizes", "tiling")} == manifest
    return out


if __name__ == "__main__":
    for path in map(Path, sys.argv[1:]):
        path.write_text(add_sizes(path.read_text()))
        print(f"{path}: trained_sizes and tiling")
