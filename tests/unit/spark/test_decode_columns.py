"""Silver's ``decode``: Confluent wire bytes in, typed v3 columns out, column by column.

test_silver_decode follows rows to where they end up (Silver table or DLQ reason); this
file checks what ``decode`` itself hands to the rules: ``decoded``, ``out_of_range``
and every v3 value, for a good body under two writer schemas (one without
``vendor_data``), a malformed body, an unusable and an unknown schema id, a bad header
and decimals too large for Silver. Expected values are the hand-built inputs.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pyspark.sql import functions as F

from k2.contracts import trade_schema_text
from spark_jobs import wire
from spark_jobs.silver_transformation import decode, framed, with_schema_problem
from tests.unit.spark.wire_bytes import (
    BRONZE_DDL,
    frame,
    good_fields,
    kafka_row,
    string_map,
    v3_body,
)

TOPIC = "d.binance"
TS_US = int(datetime(2026, 1, 1, 11, 59, 50, tzinfo=UTC).timestamp() * 1_000_000)
V3, NO_VENDOR, FOREIGN, UNKNOWN = 7, 9, 8, 12345


def schema_without_vendor_data() -> str:
    """An older writer schema: v3 less its last field (usable: what it lacks decodes as null)."""
    schema = json.loads(trade_schema_text())
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "vendor_data"]
    return json.dumps(schema)


SCHEMAS = {
    V3: wire.WriterSchema(V3, trade_schema_text(), None),
    NO_VENDOR: wire.WriterSchema(NO_VENDOR, schema_without_vendor_data(), None),
    FOREIGN: wire.WriterSchema(FOREIGN, None, "schema id 8 is x.Other, not the trade record"),
}
FIELDS = good_fields("binance", 0, TS_US)  # side index 0 (BUY), exchange index 0 (BINANCE)
V3_BODY = v3_body(FIELDS)
NO_VENDOR_BODY = V3_BODY[: -len(string_map(FIELDS["vendor_data"]))]  # the map is the last field

ROWS = [  # offset: what the row is
    kafka_row(TOPIC, frame(V3, V3_BODY), 0),  # good v3 body
    kafka_row(TOPIC, frame(NO_VENDOR, NO_VENDOR_BODY), 1),  # good body of the older schema
    kafka_row(TOPIC, frame(V3, b"\xff" * 12), 2),  # malformed body
    kafka_row(TOPIC, frame(FOREIGN, V3_BODY), 3),  # id of a schema that is not a trade
    kafka_row(TOPIC, frame(UNKNOWN, V3_BODY), 4),  # id the cache has no answer for
    kafka_row(TOPIC, b"\x05" + frame(V3, V3_BODY)[1:], 5),  # bad magic byte
    kafka_row(TOPIC, None, 6),  # tombstone
    kafka_row(TOPIC, frame(V3, v3_body({**FIELDS, "price": 10**18, "quantity": -(10**19)})), 7),  # 19-20 digits
]
V3_NAMES = ("message_id", "trade_id", "symbol", "exchange", "timestamp", "price", "quantity", "base_asset",
            "quote_currency", "side", "ingestion_timestamp", "vendor_data")
GOOD = {
    "message_id": "row-0", "trade_id": "1000", "symbol": "BTCUSDT", "exchange": "BINANCE",
    "timestamp": TS_US, "price": Decimal("65000.12345678"), "quantity": Decimal("0.00100000"),
    "base_asset": "BTC", "quote_currency": "USDT", "side": "BUY", "ingestion_timestamp": TS_US + 1500,
    "vendor_data": {"n": "0"},
}
NOTHING = dict.fromkeys(V3_NAMES)


@pytest.fixture(scope="module")
def decoded(spark) -> dict[int, dict]:
    """offset -> the decoded row, timestamps as µs since the epoch (no time-zone conversion)."""
    frames = with_schema_problem(framed(spark.createDataFrame(ROWS, BRONZE_DDL)), SCHEMAS, 32)
    out = decode(frames, SCHEMAS)
    as_micros = {c: F.unix_micros(c).alias(c) for c in ("timestamp", "ingestion_timestamp")}
    rows = out.select(*[as_micros.get(c, F.col(c)) for c in out.columns]).collect()
    assert sorted(r.offset for r in rows) == list(range(len(ROWS)))  # each row exactly once
    return {r.offset: r.asDict() for r in rows}


def v3_of(row: dict) -> dict:
    return {c: row[c] for c in V3_NAMES}


def test_decode_output_columns_and_types(spark):
    frames = with_schema_problem(framed(spark.createDataFrame(ROWS[:1], BRONZE_DDL)), SCHEMAS, 32)
    got = [(f.name, f.dataType.simpleString()) for f in decode(frames, SCHEMAS).schema.fields]
    assert got == [
        ("key", "binary"), ("value", "binary"), ("topic", "string"), ("partition", "int"), ("offset", "bigint"),
        ("kafka_timestamp", "timestamp"), ("schema_id", "int"), ("schema_problem", "string"),
        ("decoded", "boolean"), ("out_of_range", "string"),
        ("message_id", "string"), ("trade_id", "string"), ("symbol", "string"), ("exchange", "string"),
        ("timestamp", "timestamp"), ("price", "decimal(18,8)"), ("quantity", "decimal(18,8)"),
        ("base_asset", "string"), ("quote_currency", "string"), ("side", "string"),
        ("ingestion_timestamp", "timestamp"), ("vendor_data", "map<string,string>"),
    ]


def test_a_good_body_becomes_typed_columns(decoded):
    row = decoded[0]
    assert (row["schema_id"], row["schema_problem"], row["decoded"], row["out_of_range"]) == (V3, None, True, "")
    assert v3_of(row) == GOOD
    assert row["value"] == frame(V3, V3_BODY) and row["key"] == b"k"  # Bronze columns untouched


def test_fields_the_writer_schema_lacks_are_null(decoded):
    row = decoded[1]
    assert (row["schema_id"], row["decoded"], row["out_of_range"]) == (NO_VENDOR, True, "")
    assert v3_of(row) == {**GOOD, "vendor_data": None}


def test_a_malformed_body_is_not_decoded_and_yields_no_values(decoded):
    row = decoded[2]
    assert (row["schema_id"], row["schema_problem"], row["decoded"]) == (V3, None, None)
    assert v3_of(row) == NOTHING


@pytest.mark.parametrize(("offset", "schema_id", "problem"), [
    (3, FOREIGN, "schema id 8 is x.Other, not the trade record"),
    (4, UNKNOWN, "schema id 12345 was not looked up"),
])
def test_unusable_or_unknown_schema_ids_are_not_decoded(decoded, offset, schema_id, problem):
    row = decoded[offset]
    assert row["schema_id"] == schema_id and row["schema_problem"].startswith(problem)
    assert row["decoded"] is None and v3_of(row) == NOTHING


@pytest.mark.parametrize(("offset", "schema_id"), [(5, 0x00000007), (6, None)])
def test_frames_with_a_bad_header_pass_through_undecoded(decoded, offset, schema_id):
    row = decoded[offset]
    assert (row["schema_id"], row["schema_problem"], row["decoded"]) == (schema_id, None, None)
    assert v3_of(row) == NOTHING


def test_decimals_too_large_for_silver_are_named_not_wrapped(decoded):
    row = decoded[7]
    assert (row["decoded"], row["out_of_range"]) == (True, "price, quantity")
    assert (row["price"], row["quantity"]) == (None, None)
    assert row["symbol"] == "BTCUSDT" and row["timestamp"] == TS_US  # the rest decodes


def test_a_second_batch_with_the_same_schemas_reuses_the_decode_columns_and_decodes_the_same(spark, monkeypatch):
    from spark_jobs import silver_transformation

    built = []
    real = silver_transformation._decode_columns
    monkeypatch.setattr(silver_transformation, "_DECODE_COLUMNS", {})
    monkeypatch.setattr(silver_transformation, "_decode_columns", lambda usable: built.append(sorted(usable)) or real(usable))

    def decoded_offsets(rows: list, schemas: dict) -> list[tuple]:
        frames = with_schema_problem(framed(spark.createDataFrame(rows, BRONZE_DDL)), schemas, 32)
        out = decode(frames, schemas).collect()
        return sorted((r.offset, r.decoded, r.trade_id) for r in out)

    first = decoded_offsets(ROWS[:3], SCHEMAS)
    second = decoded_offsets(ROWS[:3], SCHEMAS)  # another DataFrame, the same schema set
    only_v3 = decoded_offsets(ROWS[:3], {V3: SCHEMAS[V3]})  # another schema set: its own columns
    assert first == second == [(0, True, "1000"), (1, True, "1000"), (2, None, None)]
    assert only_v3 == [(0, True, "1000"), (1, None, None), (2, None, None)]  # 1: id 9 is not in this set
    assert built == [[V3, NO_VENDOR], [V3]]
