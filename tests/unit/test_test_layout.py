"""The test tree itself: pytest imports a test module outside a package (a folder without
``__init__.py``) by its file name alone, so two such test files with one name break
collection of the whole run, though either alone passes. Caught here, in the unit tier,
before a CI run finds it."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_every_test_file_name_is_unique():
    by_name: dict[str, list[str]] = defaultdict(list)
    for path in TESTS.rglob("test_*.py"):
        if not (path.parent / "__init__.py").exists():  # in a package, its name is qualified
            by_name[path.name].append(str(path.relative_to(TESTS)))
    assert len(by_name) > 50  # the tree was found
    assert {name: paths for name, paths in by_name.items() if len(paths) > 1} == {}
