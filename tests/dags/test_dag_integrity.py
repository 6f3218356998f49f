"""Every DAG in dags/ imports cleanly and carries the metadata operators rely on."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from k2.exchanges import names

pytestmark = pytest.mark.dags

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"

# The suite of issue 5 and each DAG's schedule (None: manual / triggered only).
EXPECTED_SCHEDULES = {
    "bootstrap": None,
    "cleanup_migrations": None,
    "streaming_babysitter": timedelta(minutes=5),
    "stream_bronze_ingestion": None,
    "stream_silver_transformation": None,
    "stream_gold_aggregation": None,
    "retention": "0 2 * * *",
    "compaction": "30 * * * *",
    "completeness_ledger": timedelta(minutes=15),
    "data_quality": "15 * * * *",
    "benchmark": None,
}
# Two concurrent runs of these would collide (same objects, same streams, same cores).
SINGLE_RUN = set(EXPECTED_SCHEDULES)


@pytest.fixture(scope="module")
def dagbag():
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    from airflow.dag_processing.dagbag import DagBag

    # Airflow 3.3.0-3.3.2: include_examples=False raises TypeError; the env var does it.
    return DagBag(dag_folder=str(DAGS_DIR))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_the_suite_is_there(dagbag):
    assert set(EXPECTED_SCHEDULES) <= set(dagbag.dag_ids)


def test_every_dag_has_tags_owner_retries_and_doc(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id}: no tags"
        assert dag.doc_md and dag.doc_md.strip(), f"{dag_id}: no doc_md"
        for t in dag.tasks:
            assert t.owner and t.owner != "airflow", f"{dag_id}.{t.task_id}: default owner"
            assert t.retries is not None, f"{dag_id}.{t.task_id}: retries unset"
        assert "retries" in dag.default_args, f"{dag_id}: retries not set in default_args"


def test_schedules_and_single_runs(dagbag):
    for dag_id, expected in EXPECTED_SCHEDULES.items():
        dag = dagbag.dags[dag_id]
        assert (dag_id, dag.schedule) == (dag_id, expected)
        assert dag.catchup is False, dag_id
        if dag_id in SINGLE_RUN:
            assert dag.max_active_runs == 1, dag_id


def test_stream_runners_never_time_out_and_retry_within_seconds(dagbag):
    for dag_id in EXPECTED_SCHEDULES:
        if dag_id.startswith("stream_"):
            (run,) = dagbag.dags[dag_id].tasks
            assert run.execution_timeout is None
            # a killed stream is back well within SPEC §8's 30 s, not at the next babysitter tick
            assert run.retries >= 3 and run.retry_delay <= timedelta(seconds=10)
            assert run.max_retry_delay <= timedelta(minutes=5)


@pytest.mark.parametrize("dag_id", ["retention", "compaction"])
def test_maintenance_is_one_spark_task_over_every_table_in_data_flow_order(dagbag, dag_id):
    # SPEC §3's tables, Bronze to Gold: a Silver table per registered venue, in registry order.
    tables = ["bronze_crypto_trades", *(f"silver_{name}_trades" for name in names()), "silver_dlq",
              "gold_crypto_trades"]
    tasks = {t.task_id: t for t in dagbag.dags[dag_id].tasks}
    args = tasks[dag_id].application_args
    assert args[args.index("--tables") + 1] == ",".join(tables)
    assert tasks[dag_id].application.endswith(f"spark_jobs/{dag_id}.py")
    assert tasks[dag_id].retries >= 1


def test_retention_also_cleans_airflow_logs_whatever_the_tables_do(dagbag):
    tasks = {t.task_id: t for t in dagbag.dags["retention"].tasks}
    cleanup = tasks["airflow_task_logs_cleanup"]
    assert cleanup.upstream_task_ids == set() and cleanup.downstream_task_ids == set()
    assert set(tasks) == {"retention", "airflow_task_logs_cleanup"}


def test_background_spark_jobs_yield_the_cpu_and_the_streams_do_not(dagbag):
    from k2_airflow.priority import background_callback

    def callbacks(task) -> list:
        found = task.on_execute_callback
        return found if isinstance(found, list) else [found] if found else []

    for dag_id in ("retention", "compaction"):
        task = {t.task_id: t for t in dagbag.dags[dag_id].tasks}[dag_id]
        assert background_callback in callbacks(task), dag_id
    for dag_id in EXPECTED_SCHEDULES:
        if dag_id.startswith("stream_") or dag_id == "bootstrap":
            for task in dagbag.dags[dag_id].tasks:
                assert background_callback not in callbacks(task), f"{dag_id}.{task.task_id}"
