"""
### retention — trim each table to its retention, then tidy its files (daily, 02:00 UTC)

One Spark task, `retention`, working one table at a time in data-flow order (Bronze,
Silver, DLQ, Gold): `spark_jobs/retention.py` through SparkSubmitOperator, one log line
per table (one Spark start-up instead of five: see plugins/k2_airflow/maintenance.py). Each does partition-aligned deletes
(metadata-only) per the table's retention (Bronze 7 days, Silver and DLQ 30 days, Gold
unlimited), then snapshot expiry (as `compaction` does hourly: older than
`K2_SNAPSHOT_RETENTION_HOURS`, never what a stream still reads) and orphan-file removal
(older than 72 h, so files of in-flight commits are safe).

Commit conflicts with a stream are retried (3 times, exponential backoff). Scheduled
away from `compaction` (hourly at :30) so the two do not overlap. A separate task,
`airflow_task_logs_cleanup`, deletes Airflow log files not written for
`K2_AIRFLOW_LOG_RETENTION_DAYS` (default 7).

`k2 up` (`make run`) leaves this DAG scheduled. A machine that is off at 02:00 runs the
missed run once when the scheduler is back (cron schedule with `catchup=False`), and
the first run happens as soon as the DAG is unpaused.
"""

from __future__ import annotations

from k2_airflow.defaults import default_args, k2_dag
from k2_airflow.maintenance import airflow_log_cleanup, all_tables_task

# One run at a time (k2_dag): two runs would commit to the same tables concurrently.
with k2_dag("retention", __doc__, schedule="0 2 * * *", tags=["k2", "maintenance"],
            task_args=default_args(retries=3)) as dag:
    all_tables_task("retention")
    airflow_log_cleanup()  # independent of the tables: a failed table must not keep logs growing
