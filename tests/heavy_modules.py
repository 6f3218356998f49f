"""What a fast command must not import, and a way to see what a `k2` command imported."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

# Each costs from a few hundred ms to seconds at start: `k2 query` answers in under a second.
HEAVY = ("pandas", "polars", "pyspark", "sqlalchemy", "pyiceberg", "pydantic", "asyncio", "urllib.request")

_PROBE = """
import json, sys
from k2ops.cli import main
try:
    code = main(sys.argv[2:])
except SystemExit as exc:
    code = exc.code
with open(sys.argv[1], "w") as fh:
    json.dump({"code": code, "modules": sorted(sys.modules)}, fh)
"""


def k2_imports(args: list[str], tmp_path: Path) -> tuple[int, set[str], str]:
    """Run `k2 ARGS` in a new interpreter; its exit code, every module it had imported at the
    end, and its stderr."""
    from k2.settings import PlatformSettings

    # Only the platform's own K2_* variables: one of another runtime's (a worker's port, say)
    # makes every command import all runtimes' settings to check it, not the path measured.
    core = {f.metadata["env"] for f in dataclasses.fields(PlatformSettings)}
    env = {k: v for k, v in os.environ.items() if not k.startswith("K2_") or k in core}
    out = tmp_path / "modules.json"
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(out), *args], capture_output=True, text=True,
                          timeout=120, env=env)
    assert out.exists(), proc.stderr
    seen = json.loads(out.read_text())
    return seen["code"], set(seen["modules"]), proc.stderr


def heavy(modules: set[str]) -> list[str]:
    """The heavy modules (or their submodules) among ``modules``."""
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))
