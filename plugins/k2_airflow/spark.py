"""SparkSubmitOperator for K2's jobs: application path, connection and name in one place.

The jars, the Iceberg catalog and the master's defaults come from
``$SPARK_CONF_DIR/spark-defaults.conf`` (written by ``k2 stack up``) and the master from
the ``spark_default`` connection, so a task only names its job and arguments.
"""

from __future__ import annotations

from typing import Any

from k2.jobs import job_path

SPARK_CONN_ID = "spark_default"


def spark_job(task_id: str, job: str, args: list[str] | None = None, *, background: bool = False, **kwargs: Any):
    """A SparkSubmitOperator running ``spark_jobs/<job>.py`` with ``args``; ``background``:
    a scheduled job beside the streams, run at a lower CPU priority (k2_airflow/priority.py)."""
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    if background:
        from k2_airflow.priority import background_callback

        kwargs.setdefault("on_execute_callback", background_callback)

    return SparkSubmitOperator(
        task_id=task_id,
        application=str(job_path(job)),
        application_args=args or [],
        conn_id=SPARK_CONN_ID,
        name=f"k2-{job.replace('_', '-')}",
        **kwargs,
    )
