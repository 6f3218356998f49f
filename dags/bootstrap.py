"""
### bootstrap — create every object the platform needs (manual, idempotent)

1. **create_topics**: one Kafka topic per exchange (partitions from
   `k2.contracts.EXCHANGES`) plus the DLQ topic, with the `retention_hours` param.
   Existing topics are reported and left unchanged.
2. **register_schemas**: the v3 trade schema under every `<topic>-value` subject, with
   BACKWARD compatibility. Re-registering the same schema adds no version.
3. **create_tables**: `spark_jobs/bootstrap_tables.py` through SparkSubmitOperator
   (`spark_default`): namespace `market_data` and all tables (`IF NOT EXISTS`).
4. **verify**: checks each topic, subject (BACKWARD, v3 registered), the namespace and
   each table (format v2, zstd); the task log ends with a summary table and the task
   fails, naming what is missing, if anything is.

Run it again at any time: a second run reports `exists` everywhere and changes nothing.
"""

from __future__ import annotations

from airflow.sdk import Param, task

from k2_airflow import bootstrap
from k2_airflow.defaults import k2_dag, task_settings
from k2_airflow.spark import spark_job

with k2_dag(
    "bootstrap", __doc__, schedule=None, tags=["k2", "setup"],
    params={
        "retention_hours": Param(168, type="integer", minimum=1,
                                 description="retention.ms of newly created topics, in hours"),
    },
) as dag:

    @task
    def create_topics(params: dict | None = None) -> dict:
        return bootstrap.create_topics(task_settings("create_topics"), int(params["retention_hours"]))

    @task
    def register_schemas() -> dict:
        return bootstrap.register_schemas(task_settings("register_schemas"))

    create_tables = spark_job("create_tables", "bootstrap_tables")

    @task
    def verify() -> str:
        return bootstrap.verify(task_settings("verify"))

    create_topics() >> register_schemas() >> create_tables >> verify()
