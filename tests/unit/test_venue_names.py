"""No generic module names a venue: an exchange stays one registration (k2/exchanges.py).

Code outside a venue's own files (``workers/exchanges/<venue>*.py`` and
``workers/simulator/venues/<venue>.py``) and the registry must reach venues through the
registry, so a new venue touches only its own files and one registry line. The check
reads identifiers and string literals from the source with ``ast``; docstrings and
comments may still use venues as examples. Tests are exempt (they exercise the venues).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from k2.exchanges import names

REPO_ROOT = Path(__file__).resolve().parents[1].parent
RUNTIME_FOLDERS = ("k2", "k2ops", "workers", "spark_jobs", "dags", "plugins")
REGISTRY = Path("k2/exchanges.py")
VENUE_FOLDERS = (Path("workers/exchanges"), Path("workers/simulator/venues"))

# Files still allowed to name venues, and why. Keep it short: each entry is a venue
# detail living outside its venue's files.
ALLOWED: dict[str, str] = {
    "k2ops/cli/query.py": "usage examples in the command's help text",
    "k2ops/cli/completeness.py": "usage examples in the command's help text",
    "k2ops/cli/sql.py": "usage examples in the command's help text",
    "k2ops/platform.py": "usage examples in the printed quick start",
}


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _words(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, text) of every identifier and non-docstring string literal."""
    docstrings, words = _docstrings(tree), []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            words.append((line, node.value))
        elif isinstance(node, ast.Name):
            words.append((line, node.id))
        elif isinstance(node, ast.Attribute):
            words.append((line, node.attr))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            words.append((line, node.name))
        elif isinstance(node, ast.arg | ast.keyword) and node.arg:
            words.append((line, node.arg))
        elif isinstance(node, ast.alias):
            words.append((line, node.name))
            if node.asname:
                words.append((line, node.asname))
        elif isinstance(node, ast.ImportFrom) and node.module:
            words.append((line, node.module))
    return words


def _own_venue(relative: Path, venues: tuple[str, ...]) -> str | None:
    """The venue whose own file this is (``workers/exchanges/kraken_rest.py`` -> kraken)."""
    if relative.parent not in VENUE_FOLDERS:
        return None
    return next((v for v in venues if relative.stem == v or relative.stem.startswith(v + "_")), None)


def venue_mentions(path: Path, venues: tuple[str, ...]) -> list[str]:
    """``file:line: word`` for each identifier or literal in ``path`` naming another venue."""
    relative = path.relative_to(REPO_ROOT)
    own = _own_venue(relative, venues)
    others = [v for v in venues if v != own]
    if not others:
        return []
    pattern = re.compile("|".join(others), re.IGNORECASE)
    tree = ast.parse(path.read_text(), filename=str(path))
    return [f"{relative}:{line}: {text[:80]!r}" for line, text in _words(tree) if pattern.search(text)]


def runtime_files() -> list[Path]:
    return sorted(p for folder in RUNTIME_FOLDERS for p in (REPO_ROOT / folder).rglob("*.py")
                  if "__pycache__" not in p.parts)


def test_no_generic_module_names_a_venue():
    venues = names()
    offending = [hit for path in runtime_files()
                 if path.relative_to(REPO_ROOT) != REGISTRY and str(path.relative_to(REPO_ROOT)) not in ALLOWED
                 for hit in venue_mentions(path, venues)]
    assert not offending, ("generic modules name a venue; look it up through the registry (k2/exchanges.py) or "
                           "move the code into the venue's own module:\n" + "\n".join(offending))


def test_allowed_files_exist_and_still_need_it():
    venues = names()
    for relative in ALLOWED:
        assert venue_mentions(REPO_ROOT / relative, venues), f"{relative} no longer names a venue: drop it from ALLOWED"


def test_the_checker_reads_code_not_docs(tmp_path, monkeypatch):
    folder = tmp_path / "workers" / "exchanges"
    folder.mkdir(parents=True)
    generic = tmp_path / "generic.py"
    generic.write_text('"""Binance is an example here."""\n# kraken in a comment\n'
                       'def f(binance_symbols):\n    return "K2_KRAKEN_URLS"\n')
    own = folder / "kraken_rest.py"
    own.write_text('URL = "https://api.kraken.com"\nOTHER = "binance"\n')
    monkeypatch.setattr(__import__(__name__), "REPO_ROOT", tmp_path)
    assert [h.split(": ", 1)[1] for h in venue_mentions(generic, ("binance", "kraken"))] == [
        "'binance_symbols'", "'K2_KRAKEN_URLS'"]
    assert [h.split(": ", 1)[1] for h in venue_mentions(own, ("binance", "kraken"))] == ["'binance'"]
