"""The benchmarks in ``bench/`` stay runnable: each imports, and every name one of them takes
from a sibling (``import intake as bench``, then ``bench.start``) still exists there.

They are run by hand, not by the suite, so a helper renamed in one of them used to break the
others unnoticed (``bench/operators.py`` and ``bench/surge.py`` called a removed
``bench.start`` for a day). Nothing is run here: the scripts are imported and read.
"""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = sorted(path.stem for path in BENCH.glob("*.py"))


@pytest.fixture(scope="module", autouse=True)
def _bench_on_path() -> Iterator[None]:
    """The scripts import their siblings by name (``import intake``), as when run."""
    sys.path.insert(0, str(BENCH))
    try:
        yield
    finally:
        sys.path.remove(str(BENCH))


def _sibling_imports(tree: ast.Module) -> dict[str, str]:
    """Local name -> sibling module, for ``import intake as bench`` and the like."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in SCRIPTS:
                    names[alias.asname or alias.name] = alias.name
    return names


def test_there_are_benchmarks_to_check() -> None:
    assert {"intake", "surge", "operators", "broadcast", "intake_service"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_benchmark_imports_and_finds_what_it_takes_from_its_siblings(script: str) -> None:
    # An import error, or a name gone from a `from … import`, fails here.
    importlib.import_module(script)
    tree = ast.parse((BENCH / f"{script}.py").read_text(encoding="utf-8"))
    siblings = _sibling_imports(tree)
    missing = sorted(
        f"{node.value.id}.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in siblings
        and not hasattr(importlib.import_module(siblings[node.value.id]), node.attr)
    )
    assert not missing, f"bench/{script}.py uses names its siblings no longer have: {missing}"
