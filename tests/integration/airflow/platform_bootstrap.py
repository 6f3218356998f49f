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


def ensure_estate(settings, airflow_cli) -> None:
    """The platform's tables exist: bootstrap runs now (`airflow dags test`, minutes) unless
    the bootstrap module, or another test, made them already."""
    from k2 import contracts, iceberg_admin
    from k2.catalog import catalog

    with bootstrap_lock(settings):  # the bootstrap module may be making the estate right now
        if set(contracts.all_tables()) - set(iceberg_admin.existing_tables(catalog(settings))):
            result = airflow_cli("dags", "test", "bootstrap", timeout=420)
            assert result.returncode == 0, result.stdout[-3000:]


@contextmanager
def bootstrap_lock(settings) -> Iterator[None]:
    """Exclusive, across processes, for the duration of one bootstrap run."""
    path = Path(settings.home) / "run" / "test-platform-bootstrap.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, even on a crash
        yield
