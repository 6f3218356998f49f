"""Background tasks raise their niceness, and what they start inherits it (k2_airflow/priority.py).

Each case runs in a child interpreter: a process cannot lower its niceness back.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
CHILD = """
import os, subprocess, sys
from k2_airflow.priority import lower_priority
start = int(sys.argv[1])
if start:
    os.nice(start)
now = lower_priority(int(sys.argv[2]))
grandchild = subprocess.run([sys.executable, "-c", "import os; print(os.nice(0))"], capture_output=True, text=True)
print(now, grandchild.stdout.strip())
"""


def niceness_after(start: int, wanted: int) -> tuple[int, int]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins")])}
    out = subprocess.run([sys.executable, "-c", CHILD, str(start), str(wanted)], capture_output=True, text=True,
                         env=env, cwd=REPO, timeout=60, check=True).stdout.split()
    return int(out[0]), int(out[1])


@pytest.mark.parametrize(("start", "wanted", "expected"), [(0, 10, 10), (0, 0, 0), (3, 10, 10), (12, 10, 12)])
def test_lower_priority_raises_niceness_never_lowers_it_and_children_inherit_it(start, wanted, expected):
    base = os.nice(0)  # the test runner may itself run niced
    assert niceness_after(start, wanted) == (max(base + start, expected), max(base + start, expected))
