"""Defaults every K2 DAG shares (owner, retries, how a task reads its settings), so the
DagBag test has one truth."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from k2.config import check_unknown_variables
from k2.settings import PlatformSettings, load_platform

OWNER = "k2-data-platform"
START_DATE = datetime(2026, 1, 1)  # fixed and in the past; catchup is off everywhere


def default_args(retries: int = 1, retry_delay: timedelta = timedelta(seconds=30), **extra: object) -> dict:
    return {"owner": OWNER, "retries": retries, "retry_delay": retry_delay, **extra}


def task_settings(task: str = "airflow task") -> PlatformSettings:
    """The platform settings of one Airflow task, read when the task starts.

    Every task that needs a setting calls this once and passes the result down. It also
    warns, in the task's log, about each ``K2_*`` variable no setting declares (a typo
    otherwise falls back to a default without a word); with ``K2_STRICT_SETTINGS=true``
    the task fails instead. At task start rather than at DAG parse: the dag-processor
    parses every file every 30 s, and a warning there would repeat forever, unread.
    """
    log = logging.getLogger("k2.airflow.settings")

    def warn(variable: str, closest: str | None, message: str) -> None:
        log.warning("%s: %s", task, message)

    check_unknown_variables(task, warn=warn)
    return load_platform()
