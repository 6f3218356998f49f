"""Table maintenance (retention, compaction) as one Spark task working table by table.

One Spark application for all tables, not one per table: each Spark start-up costs
15-25 s of CPU, which on the 2-core machines K2 runs on was most of an hourly
compaction's cost (and of the maintenance test's time). The job's log has a line per
table; a single table can still be worked by hand (`k2 spark-submit
spark_jobs/<job>.py --tables <table>`).

One table at a time: Iceberg maintenance commits on a table a stream writes or reads
can conflict with that stream's commits, and the platform notes ask for compaction of
one table at a time. Data-flow order (Bronze, Silver, DLQ, Gold) means a stream's
source has finished its maintenance before the stream's own sink starts its own.
Commit conflicts are retried with exponential backoff; the streams skip the delete and
replace snapshots these jobs commit, and snapshot expiry keeps what a stopped stream's
checkpoint may still need (the jobs own those ages).
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

from k2 import contracts
from k2_airflow.spark import spark_job

CONFLICT_RETRIES = 3


def table_order() -> list[str]:
    return contracts.all_tables()  # Bronze, Silver per exchange, Silver DLQ, Gold


RETRY_POLICY = {
    "retries": CONFLICT_RETRIES,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=10),
    "execution_timeout": timedelta(hours=1),
}


def all_tables_task(job: str, extra_args: list[str] | None = None):
    """One SparkSubmitOperator task ``<job>`` working every table in :func:`table_order`."""
    return spark_job(job, job, ["--tables", ",".join(table_order()), *(extra_args or [])], background=True,
                     **RETRY_POLICY)


def clean_old_logs(root: Path, max_age_days: float, now: float) -> tuple[int, int]:
    """Delete files under ``root`` last written more than ``max_age_days`` before ``now``.

    Age is the file's modification time, so the log of a task still running (a stream's
    runner writes for days) is never removed. Folders left empty go too. Symlinks (the
    DAG processor's ``latest``) are left alone. Returns (files deleted, bytes freed).
    """
    cutoff = now - max_age_days * 86400
    files = freed = 0
    for folder, dirs, names in os.walk(root, topdown=False):
        for name in names:
            path = Path(folder, name)
            try:
                info = path.lstat()
                if path.is_symlink() or info.st_mtime >= cutoff:
                    continue
                path.unlink()
            except FileNotFoundError:  # a concurrent cleanup or rotation got there first
                continue
            files += 1
            freed += info.st_size
        for name in dirs:
            try:
                Path(folder, name).rmdir()  # only succeeds when empty
            except OSError:
                pass
    return files, freed


def airflow_log_cleanup(task_id: str = "airflow_task_logs_cleanup"):
    """A task deleting Airflow's own log files older than ``K2_AIRFLOW_LOG_RETENTION_DAYS``.

    Airflow 3.3 has no age-based retention for local task logs (its Docker image ships
    a separate clean-logs script), so the retention DAG does it.
    """
    from airflow.sdk import task

    @task(task_id=task_id, retries=1, execution_timeout=timedelta(minutes=10))
    def clean() -> str:
        from airflow.configuration import conf

        from k2.log_settings import log_settings

        days = log_settings().airflow_retention_days
        root = Path(conf.get("logging", "base_log_folder"))
        if days == 0:
            return f"K2_AIRFLOW_LOG_RETENTION_DAYS=0: logs under {root} are kept"
        files, freed = clean_old_logs(root, days, time.time())
        message = (f"deleted {files} log files ({freed / 1e6:.1f} MB) under {root} "
                   f"not written for {days} days (K2_AIRFLOW_LOG_RETENTION_DAYS)")
        print(message)
        return message

    return clean()
