"""The bootstrap DAG's verification of topics: missing ones fail it; one made with
another partition count (before bootstrap, by the broker's auto-create) passes, but
says so."""

from __future__ import annotations

import pytest

from k2 import contracts, kafka_admin
from k2_airflow import bootstrap

SETTINGS = object()  # read only by client_config, replaced below


@pytest.fixture
def present(monkeypatch) -> dict[str, int]:
    topics: dict[str, int] = {}
    monkeypatch.setattr(bootstrap, "client_config", lambda *a, **k: {})
    monkeypatch.setattr(kafka_admin, "admin_client", lambda *a, **k: object())
    monkeypatch.setattr(kafka_admin, "existing_topics", lambda admin: dict(topics))
    return topics


def test_a_topic_with_another_partition_count_passes_and_the_row_says_why(present):
    specs = {t.name: t.partitions for t in kafka_admin.desired_topics()}
    present.update(specs)
    odd = contracts.trade_topic(contracts.EXCHANGES[-1].name)
    present[odd] = specs[odd] + 1
    rows: list = []
    problems: list = []
    bootstrap._check_topics(SETTINGS, rows, problems)
    assert problems == []
    outcome = dict((name, state) for _, name, state in rows)
    assert outcome[odd] == (f"ok ({specs[odd] + 1} partitions; the contracts give {specs[odd]}: "
                            "created before bootstrap, left as is)")
    assert all(outcome[name] == f"ok ({n} partitions)" for name, n in specs.items() if name != odd)


def test_a_missing_topic_is_a_problem(present):
    specs = {t.name: t.partitions for t in kafka_admin.desired_topics()}
    gone = contracts.DLQ_TOPIC
    present.update({name: n for name, n in specs.items() if name != gone})
    rows: list = []
    problems: list = []
    bootstrap._check_topics(SETTINGS, rows, problems)
    assert problems == [f"topic {gone} is missing"]
    assert ("topic", gone, "MISSING") in rows
