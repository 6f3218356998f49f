"""Defaults every K2 DAG shares (owner, retries), so the DagBag test has one truth."""

from __future__ import annotations

from datetime import datetime, timedelta

OWNER = "k2-data-platform"
START_DATE = datetime(2026, 1, 1)  # fixed and in the past; catchup is off everywhere


def default_args(retries: int = 1, retry_delay: timedelta = timedelta(seconds=30), **extra: object) -> dict:
    return {"owner": OWNER, "retries": retries, "retry_delay": retry_delay, **extra}
