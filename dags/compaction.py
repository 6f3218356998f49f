"""
### compaction — rewrite small files and manifests (every 6 hours, at :30)

One task per table, one table at a time, in data-flow order: `spark_jobs/compaction.py
--tables <table>` through SparkSubmitOperator. The job compacts only *cold* partitions
(ones the streams no longer write or MERGE into, so its replace commits do not fail
validation), then rewrites manifests. Streams skip replace snapshots when reading.

Commit conflicts are retried (3 times, exponential backoff). Offset from `retention`
(02:00) so the two never work on the same table at once.
"""

from __future__ import annotations

from airflow.sdk import DAG

from k2_airflow.defaults import START_DATE, default_args
from k2_airflow.maintenance import per_table_chain

with DAG(
    dag_id="compaction",
    doc_md=__doc__,
    schedule="30 */6 * * *",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(retries=3),
    tags=["k2", "maintenance"],
) as dag:
    per_table_chain("compaction")
