"""Every exception class the project defines derives from K2Error."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from k2.errors import K2Error

ROOT = Path(__file__).resolve().parents[3]
# The project's packages; k2ops (operator tooling) is included once it exists.
PACKAGES = ("k2", "k2ops", "workers", "spark_jobs", "plugins/k2_airflow", "dags")
EXCEPTION_SUFFIXES = ("Error", "Exception", "Exit", "Interrupt")


def _base_name(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[1:] if rel.parts[0] == "plugins" else rel.parts  # plugins/ is on sys.path
    return ".".join(parts).removesuffix(".__init__")


def _exception_classes() -> list[tuple[str, str]]:
    """(module, class) for each top-level class whose bases name an exception, read from the
    source so a module nobody imports in the tests is still covered."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")) if (ROOT / package).is_dir() else []:
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, ast.ClassDef) and any(
                    _base_name(b).endswith(EXCEPTION_SUFFIXES) for b in node.bases
                ):
                    found.append((_module_name(path), node.name))
    return found


def test_every_exception_class_of_the_project_is_a_k2_error():
    classes = _exception_classes()
    # K2Error and the 14 that existed when it was added; more may come, none may go unseen.
    assert len(classes) >= 15, classes
    not_k2 = []
    for module, name in classes:
        cls = getattr(importlib.import_module(module), name)
        assert issubclass(cls, BaseException), f"{module}.{name}"
        if not issubclass(cls, K2Error):
            not_k2.append(f"{module}.{name}")
    assert not_k2 == []


def test_k2_errors_keep_the_builtin_base_callers_catch():
    from k2.config import SettingsError
    from k2.schema_registry import RegistryError
    from workers.normalize import NormalizeError

    assert issubclass(SettingsError, ValueError)
    assert issubclass(NormalizeError, ValueError)
    assert issubclass(RegistryError, RuntimeError)
    assert not issubclass(TypeError, K2Error)
