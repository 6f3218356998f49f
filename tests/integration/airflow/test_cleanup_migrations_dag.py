"""cleanup_migrations against the real stack: the real run removes exactly the dry run's plan.

Legacy objects of every kind are seeded next to v3 objects and foreign look-alikes (names
with ``v1``, ``equity``, ``asx`` or our old prefixes that are not on the explicit list).
After the dry run, one more listed legacy object of each kind appears: the real run must
leave it, because the plan the operator reviewed did not list it.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import pyarrow as pa
import pytest

from k2 import contracts, iceberg_admin, kafka_admin, schema_registry
from k2.catalog import catalog
from k2_airflow import cleanup_plan, legacy

pytestmark = [pytest.mark.dags, pytest.mark.integration]

LEGACY_RECORD = {
    "type": "record", "namespace": "com.k2.marketdata",
    "fields": [{"name": "symbol", "type": "string"}, {"name": "price", "type": "double"}],
}
# Listed legacy objects that appear only after the dry run: the real run must keep them.
LATE = {"table": "quotes_v1", "subject": "market.equities.reference_data.asx-value",
        "topic": "market.equities.reference_data.asx"}


def _avro(name: str) -> str:
    return json.dumps({**LEGACY_RECORD, "name": name})


class Estate:
    """Create, list and remove tables, subjects and topics of the real stack by kind."""

    def __init__(self, stack):
        from confluent_kafka.schema_registry import Schema

        self._schema = Schema
        self.cat = catalog(stack)
        self.registry = schema_registry.registry_client(stack.registry_url)
        self.admin = kafka_admin.admin_client(stack.kafka_bootstrap)
        self.locations: dict[str, Path] = {}

    def create(self, kind: str, name: str) -> None:
        if kind == "table":
            table = self.cat.create_table_if_not_exists(
                contracts.qualified(name), schema=pa.schema([("symbol", pa.string())]))
            table.append(pa.table({"symbol": ["BHP"]}))
            self.locations[name] = Path(urlparse(table.location()).path)
        elif kind == "subject":
            self.registry.register_schema(name, self._schema(_avro("Legacy"), "AVRO"))
        else:
            kafka_admin.ensure_topics(self.admin, [kafka_admin.TopicSpec(name, 1)])

    def remove(self, kind: str, name: str) -> None:
        if kind == "table":
            iceberg_admin.purge_table(self.cat, name)
        elif kind == "subject":
            schema_registry.delete_subject(self.registry, name)
        else:
            kafka_admin.delete_topics(self.admin, [name])

    def present(self) -> dict[str, set[str]]:
        return {
            "table": set(iceberg_admin.existing_tables(self.cat)),
            "subject": set(schema_registry.list_subjects(self.registry)),
            "topic": set(kafka_admin.existing_topics(self.admin)),
        }


@pytest.fixture
def seeded(stack, run_id):
    """Every listed legacy object except the late ones, v3 objects, and foreign look-alikes."""
    estate = Estate(stack)
    estate.cat.create_namespace_if_not_exists(contracts.NAMESPACE)
    schema_registry.ensure_trade_subjects(estate.registry)  # v3 subjects must survive
    kafka_admin.ensure_topics(estate.admin, kafka_admin.desired_topics())  # v3 topics must survive
    foreign = {
        "table": [f"equity_trades_v1_t{run_id}"],
        "subject": [f"equity-other-app-{run_id}-value", f"myapp.v1.t{run_id}-value",
                    f"market.equities.trades.asx.t{run_id}-value"],
        "topic": [f"myapp.equities.v1.t{run_id}", f"market.equities.quotes.t{run_id}"],
    }
    for kind, name in LATE.items():
        estate.remove(kind, name)  # left by an earlier run: it must appear only after the dry run
    for kind in legacy.KINDS:
        for name in [*(n for n in legacy.LEGACY[kind] if n != LATE[kind]), *foreign[kind]]:
            estate.create(kind, name)
    yield estate, foreign
    for kind in legacy.KINDS:
        for name in [LATE[kind], *foreign[kind]]:
            estate.remove(kind, name)


def _watched(estate: Estate, foreign: dict[str, list[str]]) -> dict[str, set[str]]:
    """Which listed legacy, foreign and v3 objects exist now.

    Only these are compared: other tests share the stack and create their own objects.
    """
    names = {
        "table": {*legacy.LEGACY_TABLES, *contracts.lakehouse_tables()},
        "subject": {*legacy.LEGACY_SUBJECTS, *schema_registry.desired_subjects()},
        "topic": {*legacy.LEGACY_TOPICS, *contracts.trade_topics(), contracts.DLQ_TOPIC},
    }
    present = estate.present()
    return {kind: (names[kind] | set(foreign[kind])) & present[kind] for kind in legacy.KINDS}


def _run(airflow_cli, conf: dict | None = None, ok: bool = True) -> str:
    args = ["dags", "test", "cleanup_migrations"]
    if conf is not None:
        args += ["-c", json.dumps(conf)]
    result = airflow_cli(*args, timeout=300)
    output = result.stdout + result.stderr
    if ok:
        assert result.returncode == 0 and "state=success" in output, output[-5000:]
    else:
        assert result.returncode != 0 and "state=success" not in output, output[-5000:]
    return output


def test_real_run_removes_exactly_the_dry_run_plan(airflow_cli, stack, seeded):
    estate, foreign = seeded
    expected_plan = {kind: sorted(n for n in legacy.LEGACY[kind] if n != LATE[kind]) for kind in legacy.KINDS}
    before = _watched(estate, foreign)
    for kind in legacy.KINDS:
        assert set(expected_plan[kind]) | set(foreign[kind]) <= before[kind], f"seeding {kind}s failed"

    output = _run(airflow_cli)  # dry_run defaults to true
    assert _watched(estate, foreign) == before, "the dry run removed something"
    plan = json.loads(cleanup_plan.plan_path(stack).read_text())
    assert plan["items"] == expected_plan
    assert plan["target"] == cleanup_plan.target_of(stack)
    summary = output.split("Cleanup migrations: DRY RUN", 1)[1]
    for name in [*map(contracts.qualified, expected_plan["table"]), *expected_plan["subject"],
                 *expected_plan["topic"]]:
        assert name in summary, f"{name} not listed in the dry-run summary"
    for name in [*(n for names in foreign.values() for n in names), *schema_registry.desired_subjects()]:
        assert name not in summary

    for kind, name in LATE.items():  # appears after the operator saw the plan
        estate.create(kind, name)
    with_late = _watched(estate, foreign)

    output = _run(airflow_cli, {"dry_run": False})
    after = _watched(estate, foreign)
    removed = {kind: with_late[kind] - after[kind] for kind in legacy.KINDS}
    assert removed == {kind: set(names) for kind, names in expected_plan.items()}
    assert {kind: after[kind] for kind in legacy.KINDS} == \
        {kind: with_late[kind] - set(expected_plan[kind]) for kind in legacy.KINDS}
    for kind, name in LATE.items():
        assert name in after[kind], f"late {kind} {name} was removed though not in the plan"
    for name in expected_plan["table"]:
        assert not any(estate.locations[name].rglob("*.parquet")), f"data files left of {name}"
    decode = json.JSONDecoder().raw_decode  # Airflow's log handler appends the logger and line
    lines = [decode(line[line.index("{"):])[0] for line in output.splitlines()
             if '"event":"cleanup_removed"' in line]
    assert sorted((x["kind"], x["name"]) for x in lines) == sorted(
        (kind, contracts.qualified(n) if kind == "table" else n)
        for kind, names in expected_plan.items() for n in names)
    assert not cleanup_plan.plan_path(stack).exists(), "the carried-out plan was not archived"

    # The plan was used: another real run refuses until a new dry run, and removes nothing.
    output = _run(airflow_cli, {"dry_run": False}, ok=False)
    assert "no cleanup plan" in output and "dry_run=true" in output, output[-5000:]
    assert _watched(estate, foreign) == after
