"""The layering docs/layout.md describes, checked on the source: imports go one way (launch -> search -> {spaces,
ecg}), ecg/ imports neither Ray, Optuna nor the search, and search/ has no import circle."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(package: str) -> dict[str, set[str]]:
    """module -> the modules it imports (absolute imports, at any depth of the file, TYPE_CHECKING ones too)."""
    graph: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
        graph[module] = found
    return graph


def test_search_has_no_import_circle() -> None:
    graph = _imports("search")
    edges = {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}
    circles = []
    for start in edges:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in edges[node]:
                if nxt == start:
                    circles.append(" -> ".join(path + [start]))
                elif nxt not in path:
                    stack.append((nxt, path + [nxt]))
    assert not circles, circles[:3]


def test_ecg_imports_neither_ray_nor_optuna_nor_the_search() -> None:
    upward = {module: sorted(d for d in deps if d.split(".")[0] in ("ray", "optuna", "search", "spaces", "launch"))
              for module, deps in _imports("ecg").items()}
    assert not {m: d for m, d in upward.items() if d}


def test_spaces_and_options_load_without_torch_ray_or_pandas() -> None:
    """What launch.py --help and a refused value import (they answer in a fraction of a second)."""
    code = ("import sys, spaces, search.options, ecg.flat_config; "
            "print(sorted(m for m in ('torch', 'ray', 'optuna', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_trial_worker_does_not_load_scikit_learn() -> None:
    """What a trial's worker imports before its first epoch (search.trainable): scikit-learn (through iterstrat,
    which only the driver's split needs) is not among it."""
    code = "import sys, search.trainable; print(sorted(m for m in ('sklearn', 'iterstrat', 'scipy.stats') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_start_leaves_ray_tune_torch_and_optuna_to_the_thread_that_runs_while_ray_starts() -> None:
    """What `search.runner` imports before Ray's start: not the rest of the search (`search.finish`, with Ray
    Tune, torch, Optuna, matplotlib; imported while Ray starts), nor scikit-learn (a split drawn before is read
    from the cache, tests/ecg/data/test_split.py)."""
    heavy = ("search.finish", "search.tuner", "ray.tune", "torch", "optuna", "matplotlib", "sklearn")
    code = f"import sys, launch, search.runner; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
