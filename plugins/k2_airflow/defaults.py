"""Defaults every K2 DAG shares (owner, retries, how a task reads its settings), so the
DagBag test has one truth."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from k2.config import check_unknown_variables
from k2.settings import PlatformSettings, load_platform

OWNER = "k2-data-platform"
START_DATE = datetime(2026, 1, 1)  # fixed and in the past; catchup is off everywhere


def default_args(retries: int = 1, retry_delay: timedelta = timedelta(seconds=30), **extra: object) -> dict:
    return {"owner": OWNER, "retries": retries, "retry_delay": retry_delay, **extra}


def k2_dag(dag_id: str, doc_md: str | None, *, schedule: Any, tags: list[str],
           task_args: dict | None = None, **dag_kwargs: Any):
    """A DAG with what every K2 DAG shares: fixed start date, no catchup, one run at a time.

    One run at a time everywhere: two runs of any K2 DAG would collide (same tables, same
    streams, same 2 cores). ``task_args`` are the tasks' defaults (:func:`default_args`
    unless given); ``dag_kwargs`` (params, dagrun_timeout, ...) go to the DAG as they are.
    Use it as ``with k2_dag(...) as dag:`` so the DAG stays a module global Airflow finds.
    """
    from airflow.sdk import DAG

    return DAG(
        dag_id=dag_id,
        doc_md=doc_md,
        schedule=schedule,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=task_args if task_args is not None else default_args(),
        tags=tags,
        **dag_kwargs,
    )


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
