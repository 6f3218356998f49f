"""Background work yields the CPU to the streams.

Retention, compaction, the completeness ledger and data quality run on schedules beside
the three streams. On the 2-core machines K2 runs on, a compaction job's Spark driver
took CPU the streams' micro-batches were waiting for: measured on the whole platform,
Silver's p99 latency was 6-13 s higher with compaction in the window than without
(issue 17). These tasks therefore run at a higher niceness
(``K2_AIRFLOW_BACKGROUND_NICE``), inherited by everything they start (spark-submit and
its JVM): they get the CPU the streams leave, and take longer only when the machine is
busy. The task's own process is a fresh one per task instance, so the change ends with it.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from k2.settings import PlatformSettings

log = logging.getLogger("k2.airflow.priority")


def lower_priority(nice: int) -> int:
    """Raise this process's niceness to ``nice`` and return the niceness it now has.

    Never lowers it: an unprivileged process cannot, and an Airflow started under ``nice``
    by its operator stays as nice as they chose. Processes started afterwards inherit it.
    """
    current = os.nice(0)
    if nice > current:
        current = os.nice(nice - current)
    return current


def run_in_background(task: str, settings: PlatformSettings) -> int:
    nice = lower_priority(settings.airflow_background_nice)
    log.info("%s: running at niceness %d (K2_AIRFLOW_BACKGROUND_NICE), after the streams", task, nice)
    return nice


def background_callback(context: dict[str, Any]) -> None:
    """``on_execute_callback`` of a background Spark task: runs in the task's process just
    before it starts spark-submit."""
    from k2_airflow.defaults import task_settings

    task = context["task"].task_id
    run_in_background(task, task_settings(task))
