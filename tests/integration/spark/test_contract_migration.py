"""The contract evolves under BACKWARD in the real registry: new venues on an old lakehouse.

A lakehouse, topics and subjects are bootstrapped as they were before Coinbase, Bybit and
OKX were registered (the registry's first two venues and the v3 schema of that time,
kept as ``trade_v3_before_coinbase.avsc``), and a trade is written with that schema. Then
the bootstrap steps run again with today's registry and schema, as an upgrade does:

- each old subject gets the new schema as a second version, under BACKWARD, its first
  version untouched; the new venues get their topics and subjects;
- the new Silver tables are created; the tables that existed keep their snapshots, schemas
  and rows;
- Silver decodes the old record with its writer schema (the id in its header), and a new
  venue's record with the new one.

Everything is the test's own: a namespace, topics and subjects under a unique prefix.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse

import fastavro
import pytest
from confluent_kafka import Producer

from k2 import contracts, kafka_admin, schema_registry
from k2.catalog import catalog
from k2.exchanges import VENUES
from k2.kafka_client import client_config
from k2.settings import env_for_children, platform

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

OLD_SCHEMA_FILE = Path(__file__).with_name("trade_v3_before_coinbase.avsc")
OLD_VENUES = VENUES[:2]  # binance, kraken: the registry before the three new venues
COMPARED = ("message_id", "trade_id", "symbol", "exchange", "price", "quantity", "side")


def _record(exchange: str, symbol: str, base: str, quote: str, trade_id: str) -> dict:
    now_us = int(time.time() * 1_000_000) // 1_000_000 * 1_000_000
    key = f"{exchange}:{symbol}:{trade_id}"
    return {"message_id": str(uuid.uuid5(uuid.UUID("6f1c2b1e-5d0a-5b8e-9c3e-4b2a7f0d1e93"), key)),
            "trade_id": trade_id, "symbol": symbol, "exchange": exchange, "timestamp": now_us - 1_000_000,
            "price": Decimal("94250.10000000"), "quantity": Decimal("0.00210000"), "base_asset": base,
            "quote_currency": quote, "side": "BUY", "ingestion_timestamp": now_us, "vendor_data": {}}


def _confluent(schema: dict, schema_id: int, record: dict) -> bytes:
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema), record)
    return b"\x00" + schema_id.to_bytes(4, "big") + body.getvalue()


def _bootstrap(s, prefix: str, spark, namespace: str) -> dict[str, dict]:
    """The bootstrap DAG's steps (topics, subjects, tables) on the test's own names."""
    from spark_jobs.tables import create_all

    specs = [kafka_admin.TopicSpec(prefix + t.name, 1, t.config) for t in kafka_admin.desired_topics()]
    kafka_admin.ensure_topics(kafka_admin.admin_client(client_config(s, admin=True)), specs)
    client = schema_registry.registry_client(s.registry_url)
    subjects = schema_registry.ensure_trade_subjects(client, [prefix + t for t in contracts.trade_topics()])
    create_all(spark, s, namespace)
    return subjects


def _distribution(spark, table: str) -> str | None:
    from spark_jobs.tables import table_properties

    return table_properties(spark, table).get("write.distribution-mode")


def _silver_row(spark, table: str, trade: dict) -> None:
    """Append ``trade`` to a Silver table, as the stream would have."""
    def value(name: str) -> object:
        if name in ("timestamp", "ingestion_timestamp"):
            return datetime.fromtimestamp(trade[name] / 1_000_000, UTC)
        if name == "exchange_date":
            return datetime.fromtimestamp(trade["timestamp"] / 1_000_000, UTC).date()
        return trade.get(name)

    schema = spark.table(table).schema
    spark.createDataFrame([tuple(value(f.name) for f in schema.fields)], schema).writeTo(table).append()


@pytest.fixture
def estate():
    """A namespace, topic prefix and subjects of the test's own, removed afterwards."""
    s, run = platform(), uuid.uuid4().hex[:8]
    namespace, prefix = f"k2test_migration_{run}", f"k2test.{run}."
    os.environ.update({k: v for k, v in env_for_children(s).items()
                       if k in ("SPARK_CONF_DIR", "SPARK_LOCAL_IP", "PYSPARK_PYTHON")})
    from spark_jobs.session import spark_session

    spark = spark_session("test-contract-migration")
    yield s, spark, namespace, prefix
    spark.stop()
    cat = catalog(s)
    for ident in cat.list_tables(namespace) if cat.namespace_exists(namespace) else []:
        location = urlparse(cat.load_table(ident).location()).path
        cat.drop_table(ident)
        shutil.rmtree(location, ignore_errors=True)
    if cat.namespace_exists(namespace):
        cat.drop_namespace(namespace)
    topics = [prefix + t for t in [*contracts.trade_topics(), contracts.DLQ_TOPIC]]
    kafka_admin.delete_topics(kafka_admin.admin_client(client_config(s, admin=True)), topics)
    client = schema_registry.registry_client(s.registry_url)
    for topic in topics[:-1]:
        for permanent in (False, True):
            try:
                client.delete_subject(contracts.value_subject(topic), permanent=permanent)
            except Exception:  # noqa: BLE001 - a subject the test never made
                pass


def test_new_venues_on_a_lakehouse_bootstrapped_before_them(estate, monkeypatch):
    from spark_jobs import silver_transformation as silver
    from spark_jobs import wire

    s, spark, namespace, prefix = estate
    cat = catalog(s)
    old_schema = json.loads(OLD_SCHEMA_FILE.read_text())
    assert next(f for f in old_schema["fields"] if f["name"] == "exchange")["type"]["symbols"] == ["BINANCE", "KRAKEN"]

    # Before: two venues, the old schema; a trade in Kafka and in Silver written with it.
    from spark_jobs import tables

    with monkeypatch.context() as before:
        before.setattr(contracts, "EXCHANGES", OLD_VENUES)
        before.setattr(tables, "EXCHANGES", OLD_VENUES)
        before.setattr(contracts, "trade_schema_text", OLD_SCHEMA_FILE.read_text)  # the real one is cached
        old_subjects = _bootstrap(s, prefix, spark, namespace)
        old_table_names = set(contracts.all_tables())
    binance_topic = prefix + contracts.trade_topic("binance")
    binance_subject = contracts.value_subject(binance_topic)
    assert set(old_subjects) == {contracts.value_subject(prefix + contracts.trade_topic(v.name)) for v in OLD_VENUES}
    assert {i[-1] for i in cat.list_tables(namespace)} == old_table_names
    old_id = old_subjects[binance_subject]["id"]
    old_trade = _record("BINANCE", "BTCUSDT", "BTC", "USDT", "5123456789")
    producer = Producer({"bootstrap.servers": s.kafka_bootstrap})
    producer.produce(binance_topic, key=b"BTCUSDT", value=_confluent(old_schema, old_id, old_trade))
    assert producer.flush(30) == 0
    _silver_row(spark, f"{s.catalog_name}.{namespace}.{contracts.silver_table('binance')}", old_trade)
    old_state = {name: (t.metadata.current_snapshot_id, t.schema(), t.scan().to_arrow().num_rows)
                 for name in old_table_names for t in [cat.load_table(f"{namespace}.{name}")]}
    assert old_state[contracts.silver_table("binance")][2] == 1

    # The write layout bootstrap gave the tables before this round: Gold's WRITE ORDERED BY
    # had switched it to a range distribution, Silver's tables had Iceberg's default.
    gold = f"{s.catalog_name}.{namespace}.{contracts.GOLD_TABLE}"
    binance_silver = f"{s.catalog_name}.{namespace}.{contracts.silver_table('binance')}"
    spark.sql(f"ALTER TABLE {gold} WRITE ORDERED BY `timestamp`, trade_id")
    spark.sql(f"ALTER TABLE {binance_silver} UNSET TBLPROPERTIES ('write.distribution-mode')")
    assert _distribution(spark, gold) == "range"
    assert [p for p in tables.verify_all(spark, s, namespace) if "distribution-mode" in p] == [
        f"{namespace}.{contracts.silver_table('binance')}: property write.distribution-mode is not set, expected none "
        "(run bootstrap_tables to re-apply)",
        f"{namespace}.{contracts.GOLD_TABLE}: property write.distribution-mode is range, expected hash "
        "(run bootstrap_tables to re-apply)",
    ]

    # After: today's registry and schema, on the same estate.
    new_subjects = _bootstrap(s, prefix, spark, namespace)
    assert tables.verify_all(spark, s, namespace) == []
    assert (_distribution(spark, gold), _distribution(spark, binance_silver)) == ("hash", "none")
    assert tables.table_properties(spark, gold)["sort-order"] == "timestamp ASC NULLS FIRST, trade_id ASC NULLS FIRST"
    client = schema_registry.registry_client(s.registry_url)
    assert new_subjects[binance_subject]["status"] == "exists"
    assert client.get_versions(binance_subject) == [1, 2]
    assert json.loads(client.get_version(binance_subject, 1).schema.schema_str) == old_schema
    assert client.get_compatibility(binance_subject) == "BACKWARD"
    assert new_subjects[binance_subject]["id"] != old_id
    for v in VENUES[len(OLD_VENUES):]:
        assert new_subjects[contracts.value_subject(prefix + contracts.trade_topic(v.name))]["status"] == "registered"
    present = kafka_admin.existing_topics(kafka_admin.admin_client(client_config(s, admin=True)))
    assert {prefix + contracts.trade_topic(v.name) for v in VENUES} <= set(present)
    assert {i[-1] for i in cat.list_tables(namespace)} == set(contracts.all_tables())
    for name, state in old_state.items():
        table = cat.load_table(f"{namespace}.{name}")
        assert (table.metadata.current_snapshot_id, table.schema(), table.scan().to_arrow().num_rows) == state, name

    # Silver decodes the old record with its writer schema, a new venue's with the new one.
    okx_topic = prefix + contracts.trade_topic("okx")
    okx_id = new_subjects[contracts.value_subject(okx_topic)]["id"]
    new_trade = _record("OKX", "BTC-USDT", "BTC", "USDT", "745519721")
    producer.produce(okx_topic, key=b"BTC-USDT", value=_confluent(contracts.trade_schema(), okx_id, new_trade))
    assert producer.flush(30) == 0
    kafka = (spark.read.format("kafka").option("kafka.bootstrap.servers", s.kafka_bootstrap)
             .option("subscribe", f"{binance_topic},{okx_topic}").option("startingOffsets", "earliest").load())
    frames = silver.framed(kafka.withColumnRenamed("timestamp", "kafka_timestamp"))  # as Bronze holds them
    schemas = silver.resolve_schemas(frames, wire.SchemaCache(s.registry_url), 8)
    assert schemas[old_id].usable and schemas[okx_id].usable
    decoded = silver.decode(silver.with_schema_problem(frames, schemas, 8), schemas)
    rows = {r["topic"]: r for r in decoded.collect()}
    assert set(rows) == {binance_topic, okx_topic}
    for topic, sid, trade in ((binance_topic, old_id, old_trade), (okx_topic, okx_id, new_trade)):
        row = rows[topic]
        assert (row["schema_id"], row["decoded"], row["out_of_range"]) == (sid, True, ""), row
        assert {k: row[k] for k in COMPARED} == {k: trade[k] for k in COMPARED}
