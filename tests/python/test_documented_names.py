"""Every diffusable module or name the repository's text refers to exists: the commands in the
README, docs and scripts (`-m diffusable.experiments.ae_eval`), the imports of the analysis
scripts under docs/results, and the names comments point at (`diffusable.evaluation.metrics.psnr`).
Run logs (events.jsonl) are records of what ran and keep the names of their day."""

import importlib
import importlib.util
import re

from diffusable.paths import REPO_ROOT

ROOTS = ["README.md", "docs", "scripts", "bench", "src", "tests", ".ci"]
SUFFIXES = {".md", ".py", ".sh", ".ts", ".mjs", ".json", ""}
# Keys of the ONNX metadata and the data dir's database file: names in the diffusable namespace
# that are not modules.
NOT_MODULES = {
    "diffusable.role",
    "diffusable.bundle",
    "diffusable.variant",
    "diffusable.autoencoder_config",
    "diffusable.denoiser_config",
    "diffusable.bench",
    "diffusable.sqlite",
    "diffusable.__file__",
}
REF = re.compile(r"(-m\s+)?\b(diffusable(?:\.[A-Za-z_]\w*)+)")


def text_files():
    for root in ROOTS:
        path = REPO_ROOT / root
        files = [path] if path.is_file() else path.rglob("*")
        for f in files:
            skip = {"node_modules", "__pycache__", ".fixtures"} & set(f.parts)
            if f.is_file() and f.suffix in SUFFIXES and not skip and f.stat().st_size < 2**21:
                yield f


def problem(ref: str, run_as_module: bool):
    """Why a dotted reference does not resolve, or None: the longest prefix that is a module,
    then attributes of it; a `-m` target must be a module itself."""
    if ref in NOT_MODULES:
        return None
    parts = ref.split(".")
    for k in range(len(parts), 1, -1):
        name = ".".join(parts[:k])
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:
            spec = None
        if spec is None:
            continue
        if run_as_module and (k < len(parts) or spec.submodule_search_locations is not None):
            return "not a module that -m can run"
        obj = importlib.import_module(name)
        for attr in parts[k:]:
            if not hasattr(obj, attr):
                return f"{name} has no {attr}"
            obj = getattr(obj, attr)
        return None
    return "no such module"


def test_every_referenced_module_and_name_exists():
    wrong = set()
    for f in text_files():
        try:
            text = f.read_text()
        except UnicodeDecodeError:
            continue
        for m in REF.finditer(text):
            ref = m.group(2).rstrip(".")
            why = problem(ref, bool(m.group(1)))
            if why:
                wrong.add(f"{f.relative_to(REPO_ROOT)}: {ref} ({why})")
    assert sorted(wrong) == []


def test_the_check_catches_a_moved_module_and_a_missing_name():
    # written in pieces, so that this file's own text holds no wrong reference
    package = "diffusable."
    assert problem(package + "train_ae", True) == "no such module"  # its name before session 28
    assert problem(package + "training.train_ae", True) is None
    assert problem(package + "training", True) == "not a module that -m can run"
    assert problem(package + "evaluation.metrics.psnr", False) is None
    assert problem(package + "evaluation.metrics.nope", False).endswith("has no nope")
