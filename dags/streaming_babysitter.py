"""
### streaming_babysitter — keep exactly one copy of each stream running (every 5 min)

Per stream (`bronze_ingestion`, `silver_transformation`, `gold_aggregation`):

- **watch_&lt;stream&gt;** reads the stream's run lock (who runs it), its `progress.json`
  (when it last reported) and its source (Kafka end offsets for bronze; the newest
  append snapshot of Bronze / the Silver tables for silver / gold, compared with the
  checkpoint). Its log has one line `STREAM <name>: <STATE> (<action>) - <why>`:
  - **HEALTHY / IDLE**: running (and either progressing or with nothing to read): left alone;
  - **STARTING / WAITING**: a runner run is already queued or running: left alone;
  - **STARTED / RESTARTED**: not running (never started / crashed): start it, it resumes
    from its checkpoint;
  - **STALLED**: running but silent for more than `stall_minutes` while its source has
    new data: killed (`kill -9` is what checkpoints are for); its runner task's retry
    restarts it (or, with no runner run left, the babysitter triggers one).
  - **DATA_LOST**: Kafka deleted offsets before `bronze_ingestion` read them (the
    stream's loss ledger has ranges no earlier run reported). Never a reason to kill
    or restart (the records are gone either way): the stream is left as it is, a line
    `STREAM <name>: DATA_LOST - <n> offsets in <k> range(s) were deleted by Kafka before
    the stream read them: <topic>[<partition>] offsets a..b (<n> records); ...` is logged
    at ERROR, and the watch task **fails once, without retry**, so the run
    shows red. The next run is green again unless more was lost; `k2 streams status`
    keeps listing every lost range. If the stream must also be started, the start
    goes first and the next run reports the loss.
- **start_&lt;stream&gt;** (skipped unless needed) triggers the runner DAG
  `stream_<stream>`, whose single SparkSubmitOperator task *is* the stream (its log is
  the stream's log).

Never two copies: the runner DAGs have `max_active_runs=1`, the babysitter waits
`start_grace_minutes` for a triggered run to take the stream's lock, and the stream
itself refuses to start while another copy holds its run lock.

Paused at creation like every DAG: unpause it once bootstrap has run.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param

from k2.contracts import STREAMS
from k2_airflow.babysitter.watch import StreamWatchOperator, runner_dag_id
from k2_airflow.defaults import default_args, k2_dag

# One run at a time (k2_dag): two babysitters could both decide to restart the same stream.
with k2_dag(
    "streaming_babysitter", __doc__, schedule=timedelta(minutes=5), tags=["k2", "streaming", "ops"],
    dagrun_timeout=timedelta(minutes=4),
    task_args=default_args(retries=1, retry_delay=timedelta(seconds=20)),
    params={
        "stall_minutes": Param(10, type="number", minimum=0,
                               description="restart a stream silent this long while its source has new data"),
        "start_grace_minutes": Param(5, type="number", minimum=0,
                                     description="time a triggered runner gets to take the stream's lock"),
    },
) as dag:
    for stream in STREAMS:
        start = TriggerDagRunOperator(
            task_id=f"start_{stream}",
            trigger_dag_id=runner_dag_id(stream),
            conf={"triggered_by": "streaming_babysitter"},
            retries=0,  # a second trigger could queue a second run; the next tick decides again
        )
        StreamWatchOperator(
            task_id=f"watch_{stream}",
            stream=stream,
            start_task_id=start.task_id,
            stall_minutes="{{ params.stall_minutes }}",
            start_grace_minutes="{{ params.start_grace_minutes }}",
        ) >> start
