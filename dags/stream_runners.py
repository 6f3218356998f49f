"""
### stream_&lt;name&gt; — runs one stream (triggered by `streaming_babysitter`)

One runner DAG per stream in `k2.contracts.STREAMS` (`stream_bronze_ingestion`,
`stream_silver_transformation`, `stream_gold_aggregation`), generated here from the
contract so no stream name is written twice.

Each has one task, `run`: `spark_jobs/<name>.py` through SparkSubmitOperator on
`spark_default`. It lasts as long as the stream, so it has no execution timeout. A
crashed or killed stream fails the task and its retry (5 retries, 5 s growing to 2
min) starts it again from its checkpoint within seconds; a clean stop (`k2 streams
stop`) exits 0 and ends the run. Once the retries are spent the run fails and the
babysitter's next tick starts a new one. The task log is the stream's log.
`max_active_runs=1` plus the stream's run lock mean a second copy never runs. Unpaused
at creation so the babysitter's triggers start them; trigger one by hand to start a
stream without waiting for the babysitter.
"""

from __future__ import annotations

from k2.contracts import STREAMS
from k2_airflow.babysitter.runner import stream_runner_dag

for _stream in STREAMS:
    _dag = stream_runner_dag(_stream, __doc__)
    globals()[_dag.dag_id] = _dag
