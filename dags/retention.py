"""
### retention — trim each table to its retention, then tidy its files (daily, 02:00 UTC)

`spark_jobs/retention.py` through SparkSubmitOperator; the job works one table at a
time (it has no table selector yet, so this is one task, not one per table). It does partition-aligned deletes (metadata-only) per the
table's retention (Bronze 7 days, Silver and DLQ 30 days, Gold unlimited), then
snapshot expiry and orphan-file removal with ages longer than any stream's expected
downtime, so a running or briefly stopped stream is never broken.

Commit conflicts with a stream are retried (3 times, exponential backoff). Scheduled
away from `compaction` (every 6 h at :30) so the two do not overlap.
"""

from __future__ import annotations

from airflow.sdk import DAG

from k2_airflow.defaults import START_DATE, default_args
from k2_airflow.maintenance import all_tables_task

with DAG(
    dag_id="retention",
    doc_md=__doc__,
    schedule="0 2 * * *",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,  # two runs would commit to the same tables concurrently
    default_args=default_args(retries=3),
    tags=["k2", "maintenance"],
) as dag:
    all_tables_task("retention")
