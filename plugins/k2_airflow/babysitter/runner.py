"""The runner DAG of one stream: a single long SparkSubmitOperator task."""

from __future__ import annotations

from datetime import timedelta

from k2_airflow.babysitter.watch import runner_dag_id
from k2_airflow.defaults import START_DATE, default_args
from k2_airflow.spark import spark_job

RUNNER_RETRIES = 5
RUNNER_RETRY_DELAY = timedelta(seconds=5)


def stream_runner_dag(stream: str, doc_md: str):
    from airflow.sdk import DAG

    with DAG(
        dag_id=runner_dag_id(stream),
        doc_md=doc_md,
        schedule=None,  # only the babysitter (or an operator) triggers it
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,  # with the stream's run lock: never two copies
        # Triggered runs of a paused DAG never start; the babysitter itself stays paused
        # at creation, so nothing runs until an operator turns the babysitter on.
        is_paused_upon_creation=False,
        # A crashed or killed stream is started again by its task's retry within seconds
        # (recovery well under a babysitter tick); backoff slows a crash loop, and once
        # the retries are spent the run fails and the babysitter's next tick takes over.
        default_args=default_args(retries=RUNNER_RETRIES, retry_delay=RUNNER_RETRY_DELAY,
                                  retry_exponential_backoff=2.0, max_retry_delay=timedelta(minutes=2)),
        tags=["k2", "streaming", "runner"],
    ) as dag:
        spark_job("run", stream, execution_timeout=None)
    return dag
