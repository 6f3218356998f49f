"""
### Platform smoke check

Runs `spark_jobs/smoke.py` through `SparkSubmitOperator` on the `spark_default`
connection: it (re)creates the Iceberg table `k2_smoke.airflow_check` in the shared
catalog and writes 5 rows. A green run proves that Airflow, Spark, the Iceberg jars and
the catalog work together. Manual trigger only; safe to re-run.
"""

from __future__ import annotations

from datetime import timedelta

from k2_airflow.defaults import k2_dag
from k2_airflow.spark import spark_job

with k2_dag("platform_smoke", __doc__, schedule=None, tags=["k2", "platform"]):
    spark_job("spark_iceberg_smoke", "smoke", ["--table", "k2_smoke.airflow_check", "--rows", "5"],
              execution_timeout=timedelta(minutes=10))
