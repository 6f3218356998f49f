"""SparkSubmitOperator for K2's jobs: application path, connection and name in one place.

The jars, the Iceberg catalog and the master's defaults come from
``$SPARK_CONF_DIR/spark-defaults.conf`` (written by ``k2 stack up``) and the master from
the ``spark_default`` connection, so a task only names its job and arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from k2.settings import REPO_ROOT

SPARK_CONN_ID = "spark_default"
SPARK_JOBS_DIR = REPO_ROOT / "spark_jobs"


def job_path(job: str) -> Path:
    """``spark_jobs/<job>.py``; the job may not exist yet when a DAG is parsed."""
    return SPARK_JOBS_DIR / f"{job}.py"


def spark_job(task_id: str, job: str, args: list[str] | None = None, **kwargs: Any):
    """A SparkSubmitOperator running ``spark_jobs/<job>.py`` with ``args``."""
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    return SparkSubmitOperator(
        task_id=task_id,
        application=str(job_path(job)),
        application_args=args or [],
        conn_id=SPARK_CONN_ID,
        name=f"k2-{job.replace('_', '-')}",
        **kwargs,
    )
