"""The direction of imports between the layers (docs/architecture.md).

- core ``k2/`` imports no other package of the project;
- runtime (``workers/``, ``spark_jobs/``, ``dags/``, ``plugins/k2_airflow/``) never imports
  the operator tooling ``k2ops/``;
- tooling may import anything.

Read from the source with ``ast`` (nothing is imported), so an import inside a function,
the lazy kind this code base uses a lot, counts as much as one at the top of a file.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# Top-level names of the project's own packages (plugins/ is on sys.path, so the Airflow
# plugin package is imported as ``k2_airflow``).
PROJECT_PACKAGES = {"k2", "k2ops", "workers", "spark_jobs", "dags", "k2_airflow"}

# layer -> (folders, packages it must not import, fewest .py files it must hold)
LAYERS = {
    "core": (("k2",), PROJECT_PACKAGES - {"k2"}, 12),
    "workers": (("workers",), {"k2ops"}, 20),
    "spark_jobs": (("spark_jobs",), {"k2ops"}, 15),
    "dags": (("dags",), {"k2ops"}, 8),
    "plugins": (("plugins/k2_airflow",), {"k2ops"}, 10),
}


@dataclass(frozen=True)
class Import:
    path: Path
    line: int
    module: str  # the absolute module named, e.g. "k2ops.stack.spark"

    def __str__(self) -> str:
        return f"{self.path.relative_to(REPO_ROOT)}:{self.line}: imports {self.module}"


def python_files(folders: tuple[str, ...]) -> list[Path]:
    return sorted(p for folder in folders for p in (REPO_ROOT / folder).rglob("*.py")
                  if "__pycache__" not in p.parts)


def imports_of(path: Path) -> list[Import]:
    """Every absolute import in the file, wherever it is (relative ones stay in their package)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [Import(path, node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(Import(path, node.lineno, node.module))
    return found


def forbidden_imports(folders: tuple[str, ...], forbidden: set[str]) -> list[Import]:
    return [imp for path in python_files(folders) for imp in imports_of(path)
            if imp.module.split(".")[0] in forbidden]


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_layer_imports_only_downwards(layer):
    folders, forbidden, fewest_files = LAYERS[layer]
    files = python_files(folders)
    assert len(files) >= fewest_files, f"{layer}: only {len(files)} files under {folders}; moved?"
    offending = forbidden_imports(folders, forbidden)
    assert not offending, (f"{layer} must not import {sorted(forbidden)}:\n"
                           + "\n".join(str(imp) for imp in offending))


def test_the_checker_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "sample.py"
    source.write_text("import os\n\ndef f():\n    from k2ops.stack import spark\n    import k2ops.bench\n")
    assert sorted((i.line, i.module) for i in imports_of(source)) == [
        (1, "os"), (4, "k2ops.stack"), (5, "k2ops.bench")]
