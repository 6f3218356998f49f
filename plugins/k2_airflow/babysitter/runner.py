"""The runner DAG of one stream: a single long SparkSubmitOperator task."""

from __future__ import annotations

from datetime import timedelta

from k2_airflow.babysitter.watch import runner_dag_id
from k2_airflow.defaults import default_args, k2_dag
from k2_airflow.spark import spark_job

RUNNER_RETRIES = 5
RUNNER_RETRY_DELAY = timedelta(seconds=5)


def stream_runner_dag(stream: str, doc_md: str):
    # One run at a time (k2_dag): with the stream's run lock, never two copies.
    with k2_dag(
        runner_dag_id(stream), doc_md,
        schedule=None,  # only the babysitter (or an operator) triggers it
        tags=["k2", "streaming", "runner"],
        # Triggered runs of a paused DAG never start; the babysitter itself stays paused
        # at creation, so nothing runs until an operator turns the babysitter on.
        is_paused_upon_creation=False,
        # A crashed or killed stream is started again by its task's retry within seconds
        # (recovery well under a babysitter tick); backoff slows a crash loop, and once
        # the retries are spent the run fails and the babysitter's next tick takes over.
        task_args=default_args(retries=RUNNER_RETRIES, retry_delay=RUNNER_RETRY_DELAY,
                               retry_exponential_backoff=2.0, max_retry_delay=timedelta(minutes=2)),
    ) as dag:
        spark_job("run", stream, execution_timeout=None)
    return dag
