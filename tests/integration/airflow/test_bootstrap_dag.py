"""The bootstrap DAG against the real local stack: creates everything, then is a no-op."""

from __future__ import annotations

import pytest

from k2 import contracts
from k2.admin import schemas, tables, topics
from k2.catalog import catalog

pytestmark = [pytest.mark.dags, pytest.mark.integration]


def _estate(settings) -> dict:
    """Everything bootstrap owns, in a form that changes if anything is (re)created."""
    admin = topics.admin_client(settings.kafka_bootstrap)
    present = topics.existing_topics(admin)
    registry = schemas.registry_client(settings.registry_url)
    subjects = set(schemas.list_subjects(registry))
    return {
        "topics": {t.name: present.get(t.name) for t in topics.desired_topics()},
        "subjects": {
            s: (registry.get_versions(s), schemas.subject_compatibility(registry, s))
            for s in schemas.desired_subjects() if s in subjects
        },
        "tables": tables.metadata_locations(catalog(settings), contracts.all_tables()),
    }


def _run_bootstrap(airflow_cli) -> str:
    result = airflow_cli("dags", "test", "bootstrap", timeout=420)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "DagRun Finished: dag_id=bootstrap" in output and "state=success" in output, output[-5000:]
    return output


def test_bootstrap_creates_everything_and_a_second_run_changes_nothing(airflow_cli, stack):
    _run_bootstrap(airflow_cli)
    first = _estate(stack)

    assert first["topics"] == {
        **{contracts.trade_topic(e.name): e.default_partitions for e in contracts.EXCHANGES},
        contracts.DLQ_TOPIC: topics.DLQ_PARTITIONS,
    }
    assert set(first["subjects"]) == {contracts.value_subject(t) for t in contracts.trade_topics()}
    for versions, level in first["subjects"].values():
        assert level == "BACKWARD"
        assert len(versions) >= 1
    assert all(first["tables"].values()), first["tables"]
    assert set(first["tables"]) == set(contracts.all_tables())

    output = _run_bootstrap(airflow_cli)
    assert _estate(stack) == first
    assert "created" not in output.split("Kafka topics", 1)[-1].split("Registry subjects", 1)[0]
    assert "Bootstrap verification" in output and "MISSING" not in output
