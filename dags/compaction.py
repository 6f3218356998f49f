"""
### compaction — rewrite small files and manifests, expire snapshots (hourly, at :30)

One Spark task, `compaction`, working one table at a time in data-flow order (Bronze,
Silver, DLQ, Gold): `spark_jobs/compaction.py` through SparkSubmitOperator, one log line
per table (one Spark start-up instead of five: see plugins/k2_airflow/maintenance.py). The job compacts only *cold* partitions
(ones the streams no longer write or MERGE into, so its replace commits do not fail
validation), then rewrites manifests, then expires snapshots older than
`K2_SNAPSHOT_RETENTION_HOURS` (default 1) except those a stream still reads. Streams
skip replace snapshots when reading.

Hourly because Gold is partitioned by hour: each hour one more Gold partition turns
cold and is compacted within the hour, and the manifests the streams add at every
commit (one every few seconds) are rewritten before they pile up, and so are the
snapshots every commit's metadata file carries. Day-partitioned tables
are compacted by the first run after their day has been over for 2 hours. Offset from
`retention` (02:00) so the two do not start together.

`k2 up` (`make run`) leaves this DAG scheduled; a run missed while the machine was off
runs once when the scheduler is back (cron schedule with `catchup=False`).
"""

from __future__ import annotations

from k2_airflow.defaults import default_args, k2_dag
from k2_airflow.maintenance import all_tables_task

with k2_dag("compaction", __doc__, schedule="30 * * * *", tags=["k2", "maintenance"],
            task_args=default_args(retries=3)) as dag:
    all_tables_task("compaction")
