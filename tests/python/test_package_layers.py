"""The layering of the diffusable package (docs/training.md), checked on its import statements,
lazy imports inside functions included: each sub-package imports only those below it."""

import ast
from collections import Counter
from pathlib import Path

import diffusable

PACKAGE = Path(diffusable.__file__).parent
TOP = "top level"  # paths, events, threads, atomic_file: what every part shares

# Which sub-packages each may import (itself always).
ALLOWED = {
    TOP: set(),
    "data": {TOP},
    "models": {TOP, "data"},
    "evaluation": {TOP, "data", "models"},
    "export": {TOP, "data", "models"},
    "training": {TOP, "data", "models", "evaluation"},
    "experiments": {TOP, "data", "models", "evaluation", "export", "training"},
}


def modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def dotted(path: Path):
    """('diffusable', 'models', 'checkpoint') for models/checkpoint.py; a package is its folder."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return parts[:-1] if parts[-1] == "__init__" else parts


def layer(name) -> str:
    """The layer of a dotted module name inside the package."""
    return name[1] if len(name) > 2 or (len(name) == 2 and name[1] in ALLOWED) else TOP


def imported(path: Path):
    """Every diffusable module a file imports, absolute or relative, at any depth of the file."""
    return imports_of(path.read_text(), dotted(path), path.name == "__init__.py")


def imports_of(source: str, here, is_package: bool):
    package = here if is_package else here[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [tuple(a.name.split(".")) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = tuple(node.module.split(".")) if node.module else ()
            if node.level:
                base = package[: len(package) - node.level + 1] + base
            # "from . import x" names modules; "from .m import f" names the module m
            found += [base + (a.name,) for a in node.names] if not node.module else [base]
    return [n for n in found if n and n[0] == "diffusable"]


def test_each_sub_package_imports_only_the_layers_below_it():
    wrong = []
    for path in modules():
        mine = layer(dotted(path))
        for target in imported(path):
            theirs = layer(target)
            if theirs != mine and theirs not in ALLOWED[mine]:
                wrong.append(f"{path.relative_to(PACKAGE)} ({mine}) imports {'.'.join(target)}")
    assert wrong == []


def test_every_sub_package_is_a_known_layer_and_no_two_modules_share_a_name():
    folders = {p.parent.name for p in modules() if p.parent != PACKAGE}
    assert folders == set(ALLOWED) - {TOP}
    names = Counter(p.name for p in modules() if p.name != "__init__.py")
    assert [n for n, k in names.items() if k > 1] == []


def test_the_check_sees_a_wrong_import():
    # the rule itself: a model that imported a trainer, even inside a function, is reported
    source = "def f():\n    from ..training.trainer import Trainer\nfrom . import checkpoint\n"
    targets = imports_of(source, ("diffusable", "models", "probe"), False)
    assert ("diffusable", "training", "trainer") in targets
    assert ("diffusable", "models", "checkpoint") in targets
    assert "training" not in ALLOWED[layer(("diffusable", "models", "probe"))]
