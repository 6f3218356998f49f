"""The platform's own estate (namespace, topics, subjects), bootstrapped once for the
tests that work on it, whichever of them comes first.

`make test` runs the bootstrap DAG's module and the babysitter's module as two pytest
processes at once: both need the estate, and two bootstrap runs at once would race
on creating the same topics and tables. Each takes its bootstrap run under one file
lock, so whoever comes second finds the estate made and only its own test runs again.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def bootstrap_lock(settings) -> Iterator[None]:
    """Exclusive, across processes, for the duration of one bootstrap run."""
    path = Path(settings.home) / "run" / "test-platform-bootstrap.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, even on a crash
        yield
