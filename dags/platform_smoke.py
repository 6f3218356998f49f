"""
### Platform smoke check

Runs `spark_jobs/smoke.py` through `SparkSubmitOperator` on the `spark_default`
connection: it (re)creates the Iceberg table `k2_smoke.airflow_check` in the shared
catalog and writes 5 rows. A green run proves that Airflow, Spark, the Iceberg jars and
the catalog work together. Manual trigger only; safe to re-run.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import DAG

from k2.jobs import job_path
from k2_airflow.defaults import START_DATE, default_args

with DAG(
    dag_id="platform_smoke",
    doc_md=__doc__,
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["k2", "platform"],
    default_args=default_args(retries=1),
):
    SparkSubmitOperator(
        task_id="spark_iceberg_smoke",
        conn_id="spark_default",
        application=str(job_path("smoke")),
        application_args=["--table", "k2_smoke.airflow_check", "--rows", "5"],
        name="k2-smoke",
        execution_timeout=timedelta(minutes=10),
    )
