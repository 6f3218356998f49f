"""Table maintenance (retention, compaction) as one Spark task per table, in sequence.

One table at a time: Iceberg maintenance commits on a table a stream writes or reads
can conflict with that stream's commits, and the platform notes ask for compaction of
one table at a time. Data-flow order (Bronze, Silver, DLQ, Gold) means a stream's
source has finished its maintenance before the stream's own sink starts its own.
Commit conflicts are retried with exponential backoff; the streams skip the delete and
replace snapshots these jobs commit, and snapshot expiry keeps what a stopped stream's
checkpoint may still need (the jobs own those ages).
"""

from __future__ import annotations

from datetime import timedelta

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


def per_table_chain(job: str, table_flag: str = "--tables",
                    extra_args: list[str] | None = None) -> list:
    """``<job>_<table>`` SparkSubmitOperator tasks chained in :func:`table_order`."""
    tasks = [
        spark_job(f"{job}_{table}", job, [table_flag, table, *(extra_args or [])], **RETRY_POLICY)
        for table in table_order()
    ]
    for upstream, downstream in zip(tasks, tasks[1:], strict=False):
        upstream >> downstream
    return tasks
