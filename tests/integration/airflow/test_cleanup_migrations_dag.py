"""cleanup_migrations against the real stack: dry run lists and keeps, real run removes."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import pyarrow as pa
import pytest

from k2 import contracts, iceberg_admin, kafka_admin, schema_registry
from k2.catalog import catalog

pytestmark = [pytest.mark.dags, pytest.mark.integration]

LEGACY_RECORD = {
    "type": "record", "namespace": "com.k2.marketdata",
    "fields": [{"name": "symbol", "type": "string"}, {"name": "price", "type": "double"}],
}


def _avro(name: str) -> str:
    return json.dumps({**LEGACY_RECORD, "name": name})


@pytest.fixture
def seeded(stack, run_id):
    """Legacy objects of every kind, plus v3 objects and a non-legacy control of each."""
    from confluent_kafka.schema_registry import Schema

    cat = catalog(stack)
    cat.create_namespace_if_not_exists(contracts.NAMESPACE)
    locations = {}
    for name in contracts.LEGACY_TABLES:
        table = cat.create_table_if_not_exists(
            contracts.qualified(name), schema=pa.schema([("symbol", pa.string())]))
        table.append(pa.table({"symbol": ["BHP"]}))
        locations[name] = Path(urlparse(table.location()).path)

    registry = schema_registry.registry_client(stack.registry_url)
    schema_registry.ensure_trade_subjects(registry)  # v3 subjects must survive
    legacy_subjects = {
        "com.k2.marketdata.Trade-value": "Trade",
        "com.k2.marketdata.Quote-value": "Quote",
        "market.equities.trades.asx-value": "Trade",
        f"market.equities.quotes.t{run_id}-value": "Quote",
    }
    for subject, record in legacy_subjects.items():
        registry.register_schema(subject, Schema(_avro(record), "AVRO"))
    keep_subject = f"k2test.t{run_id}.keep-value"
    registry.register_schema(keep_subject, Schema(_avro("Keep"), "AVRO"))

    admin = kafka_admin.admin_client(stack.kafka_bootstrap)
    kafka_admin.ensure_topics(admin, kafka_admin.desired_topics())  # v3 topics must survive
    legacy_topics = ["market.equities.trades.asx", f"market.equities.quotes.t{run_id}"]
    keep_topic = f"k2test.t{run_id}.keep"
    kafka_admin.ensure_topics(admin, [kafka_admin.TopicSpec(t, 1) for t in [*legacy_topics, keep_topic]])

    yield {
        "tables": locations, "subjects": sorted(legacy_subjects), "topics": legacy_topics,
        "keep_subject": keep_subject, "keep_topic": keep_topic,
    }
    schema_registry.delete_subject(registry, keep_subject)
    kafka_admin.delete_topics(admin, [keep_topic])


def _watched(stack, seeded) -> dict[str, set[str]]:
    """Which of the seeded, control and v3 objects exist now.

    Only these are compared: other tests share the stack and create their own objects.
    """
    registry = schema_registry.registry_client(stack.registry_url)
    names = {
        "tables": {*contracts.LEGACY_TABLES, *contracts.lakehouse_tables()},
        "subjects": {*seeded["subjects"], seeded["keep_subject"], *schema_registry.desired_subjects()},
        "topics": {*seeded["topics"], seeded["keep_topic"], *contracts.trade_topics(),
                   contracts.DLQ_TOPIC},
    }
    present = {
        "tables": set(iceberg_admin.existing_tables(catalog(stack))),
        "subjects": set(schema_registry.list_subjects(registry)),
        "topics": set(kafka_admin.existing_topics(kafka_admin.admin_client(stack.kafka_bootstrap))),
    }
    return {kind: names[kind] & present[kind] for kind in names}


def _run(airflow_cli, conf: dict | None = None) -> str:
    args = ["dags", "test", "cleanup_migrations"]
    if conf is not None:
        args += ["-c", json.dumps(conf)]
    result = airflow_cli(*args, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "state=success" in output, output[-5000:]
    return output


def test_dry_run_lists_and_keeps_then_real_run_removes_exactly_the_legacy(airflow_cli, stack, seeded):
    before = _watched(stack, seeded)
    legacy = {"tables": set(contracts.LEGACY_TABLES), "subjects": set(seeded["subjects"]),
              "topics": set(seeded["topics"])}
    for kind, names in legacy.items():
        assert names <= before[kind], f"seeding {kind} failed"

    output = _run(airflow_cli)  # dry_run defaults to true
    assert _watched(stack, seeded) == before
    summary = output.split("Cleanup migrations: DRY RUN", 1)[1]
    for name in [*map(contracts.qualified, seeded["tables"]), *seeded["subjects"], *seeded["topics"]]:
        assert name in summary, f"{name} not listed in the dry-run summary"
    for name in [seeded["keep_subject"], seeded["keep_topic"], *schema_registry.desired_subjects(),
                 *(contracts.qualified(t) for t in contracts.lakehouse_tables())]:
        assert name not in summary
    for topic in [*contracts.trade_topics(), contracts.DLQ_TOPIC]:
        assert f" {topic} " not in summary

    _run(airflow_cli, {"dry_run": False})
    after = _watched(stack, seeded)
    assert after == {kind: before[kind] - legacy[kind] for kind in before}
    for location in seeded["tables"].values():
        assert not any(location.rglob("*.parquet")), f"data files left under {location}"

    # Idempotent: a second real run removes nothing more.
    _run(airflow_cli, {"dry_run": False})
    assert _watched(stack, seeded) == after
