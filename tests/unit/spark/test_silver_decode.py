"""Silver's header reading, decoding and validation rules on a local SparkSession.

One row per defect, each built by hand (wire_bytes), and the reason each must get.
Expected values come from the test's own inputs (struct, the Avro spec), never from
the functions under test.
"""

from __future__ import annotations

import io
import json
import struct
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import fastavro
import pytest
from pyspark.sql import functions as F

from k2.contracts import trade_schema_text
from spark_jobs import wire
from spark_jobs.silver_transformation import dlq_rows, silver_rows
from tests.unit.spark.silver_batch import FOREIGN_ID, GOOD_ID, NOW, NOW_US, SCHEMAS, checked_batch
from tests.unit.spark.wire_bytes import (
    LONG_MAX,
    LONG_MIN,
    frame,
    good_fields,
    kafka_row,
    text,
    v3_body,
    varint,
)

TOPICS = {"binance": "t.binance", "kraken": "t.kraken"}


def checked_of(spark, rows: list[tuple], schemas=SCHEMAS):
    """Silver's checked frame of a batch, persisted as SilverBatch persists it: filtering
    it unpersisted would push the filters into every from_avro branch."""
    return checked_batch(spark, rows, TOPICS, schemas).persist()


def outcome(spark, rows: list[tuple], schemas=SCHEMAS) -> dict[int, tuple[str, str | None]]:
    """offset -> (where the row went: 'silver_<exchange>' or the DLQ error_type, error_message)."""
    checked = checked_of(spark, rows, schemas)
    try:
        out: dict[int, tuple[str, str | None]] = {}
        dlq = dlq_rows(checked, NOW).collect()
        for r in dlq:
            assert r.offset not in out
            out[r.offset] = (r.error_type, r.error_message)
        for ex, topic in TOPICS.items():
            for r in silver_rows(checked, topic).collect():
                n = int(r.message_id.removeprefix("row-"))
                assert n not in out
                out[n] = (f"silver_{ex}", None)
        return out
    finally:
        checked.unpersist()


def good(ex: str = "binance", n: int = 0, **override) -> bytes:
    """A valid trade's frame (message_id ``row-<n>``) with some fields overridden."""
    return frame(GOOD_ID, v3_body({**good_fields(ex, n, NOW_US - 10_000_000), **override}))


def test_hand_built_bodies_match_fastavro():
    schema = fastavro.parse_schema(json.loads(trade_schema_text()))
    record = {**good_fields("kraken", 3, NOW_US), "exchange": "KRAKEN", "side": "SELL",
              "price": Decimal("65000.12345678"), "quantity": Decimal("-0.00100000")}
    out = io.BytesIO()
    fastavro.schemaless_writer(out, schema, record)
    mine = {**good_fields("kraken", 3, NOW_US), "price": 6_500_012_345_678, "quantity": -100_000}
    assert v3_body(mine) == out.getvalue()


HEADERS = [b"\x00\x00\x00\x00\x00", b"\x00\x00\x00\x00\x01", b"\x00\x7f\xff\xff\xff",
           b"\x00\x80\x00\x00\x00", b"\x00\xff\xff\xff\xff", b"\x00\xff\xff\xff\xfe", b"\x00\x12\x34\x56\x78"]


def test_schema_id_is_the_signed_big_endian_int_for_every_header(spark):
    rows = [(n, h + b"body") for n, h in enumerate(HEADERS)]
    got = spark.createDataFrame(rows, "n int, value binary").select("n", wire.schema_id().alias("id")).collect()
    assert {r.n: r.id for r in got} == {n: struct.unpack(">i", h[1:5])[0] for n, h in enumerate(HEADERS)}


def test_schema_id_is_null_for_short_or_null_frames(spark):
    rows = [(None,), (b"",), (b"\x00",), (b"\x00\xff\xff\xff",)]
    got = spark.createDataFrame(rows, "value binary").select(wire.schema_id().alias("id"),
                                                              wire.header_ok().alias("ok")).collect()
    assert [(r.id, r.ok) for r in got] == [(None, False)] * 4


def test_a_valid_trade_reaches_its_exchanges_silver_table_intact(spark):
    fields = good_fields("kraken", 5, NOW_US - 10_000_000)
    checked = checked_of(spark, [kafka_row(TOPICS["kraken"], frame(GOOD_ID, v3_body(fields)), 5)])
    [row] = silver_rows(checked, TOPICS["kraken"]).collect()
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert row.asDict() == {
        "message_id": "row-5", "trade_id": "1005", "symbol": "BTC/USD", "exchange": "KRAKEN",
        "timestamp": (epoch + timedelta(microseconds=fields["timestamp"])).replace(tzinfo=None),
        "price": Decimal("65000.12345678"), "quantity": Decimal("0.00100000"), "base_asset": "BTC",
        "quote_currency": "USD", "side": "SELL",
        "ingestion_timestamp": (epoch + timedelta(microseconds=fields["ingestion_timestamp"])).replace(tzinfo=None),
        "vendor_data": {"n": "5"}, "exchange_date": NOW.date(),
    }
    assert silver_rows(checked, TOPICS["binance"]).count() == 0
    assert dlq_rows(checked, NOW).count() == 0


DECIMAL_MAX = 10**18 - 1  # 9999999999.99999999, the largest decimal(18,8)
B, K = TOPICS["binance"], TOPICS["kraken"]
CASES = [
    # (what, topic, value, expected error_type or silver table)
    ("null value (tombstone)", B, None, "truncated_frame"),
    ("empty value", B, b"", "truncated_frame"),
    ("magic only", B, b"\x00", "truncated_frame"),
    ("4 of 5 header bytes", B, b"\x00\x00\x00\x00", "truncated_frame"),
    ("wrong magic", B, b"\x01" + good()[1:], "bad_magic_byte"),
    ("magic 0xff", B, b"\xff\xff\xff\xff\xff", "bad_magic_byte"),
    ("header only, good id", B, frame(GOOD_ID, b""), "decode_error"),
    ("id 0", B, frame(0, good()[5:]), "unknown_schema_id"),
    ("id -1 / 2^32-1", B, frame(-1, good()[5:]), "unknown_schema_id"),
    ("id 2^31-1", B, frame(2**31 - 1, good()[5:]), "unknown_schema_id"),
    ("id 2^31", B, frame(2**31, good()[5:]), "unknown_schema_id"),
    ("foreign schema id", B, frame(FOREIGN_ID, good()[5:]), "unknown_schema_id"),
    ("garbage body", B, frame(GOOD_ID, b"\xff" * 12), "decode_error"),
    ("truncated body", B, good()[:20], "decode_error"),
    ("enum index out of range", B, good(exchange=7), "decode_error"),
    ("2 GB string length prefix", B, frame(GOOD_ID, varint(2**31 - 20) + b"ab"), "decode_error"),
    ("2 GB map block count", B, good(vendor_data={})[:-1] + varint(2**31 - 20) + b"\x00\x00", "decode_error"),
    ("topic of no exchange", "t.nasdaq", good(), "unknown_topic"),
    ("price of 19 digits", B, good(price=10**18), "value_out_of_range"),
    ("price beyond a long", B, good(price=2**64 + 5), "value_out_of_range"),
    ("quantity of 31 digits", K, good("kraken", quantity=-(10**30)), "value_out_of_range"),
    ("quantity of 72 digits (beyond decimal(38))", K, good("kraken", quantity=-(1 << 239)), "decode_error"),
    ("empty message_id", B, good(message_id=""), "missing_field"),
    ("empty symbol", B, good(symbol=""), "missing_field"),
    ("kraken trade on binance topic", B, good("kraken"), "exchange_topic_mismatch"),
    ("zero price", B, good(price=0), "non_positive_price"),
    ("most negative price", B, good(price=-DECIMAL_MAX), "non_positive_price"),
    ("negative quantity", K, good("kraken", quantity=-1), "non_positive_quantity"),
    ("timestamp 1 h ahead", B, good(timestamp=NOW_US + 3600 * 10**6), "future_timestamp"),
    ("timestamp Long.MAX", B, good(timestamp=LONG_MAX), "future_timestamp"),
    ("ingestion Long.MAX", B, good(ingestion_timestamp=LONG_MAX), "future_timestamp"),
    ("timestamp 0", B, good(timestamp=0), "ancient_timestamp"),
    ("timestamp -1", B, good(timestamp=-1), "ancient_timestamp"),
    ("timestamp Long.MIN", B, good(timestamp=LONG_MIN), "ancient_timestamp"),
    ("milliseconds as µs", B, good(timestamp=NOW_US // 1000), "ancient_timestamp"),
    ("ingestion Long.MIN", K, good("kraken", ingestion_timestamp=LONG_MIN), "ancient_timestamp"),
    ("symbol not base+quote", B, good(symbol="ETHUSDT"), "symbol_mismatch"),
    # Valid ones are built per row number: their message_id names the row.
    ("largest price and quantity", B, lambda n: good(n=n, price=DECIMAL_MAX, quantity=DECIMAL_MAX),
     "silver_binance"),
    ("smallest price and quantity", K, lambda n: good("kraken", n, price=1, quantity=1), "silver_kraken"),
    ("empty vendor_data, unicode text", B, lambda n: good(n=n, vendor_data={}, trade_id="₿1"), "silver_binance"),
    ("1 MB vendor_data", B, lambda n: good(n=n, vendor_data={"blob": "x" * 1_000_000, "": ""}), "silver_binance"),
    ("trailing bytes after the record", K, lambda n: good("kraken", n) + b"\x00junk", "silver_kraken"),
]


def value_of(case_value, n: int) -> bytes | None:
    return case_value(n) if callable(case_value) else case_value


@pytest.fixture(scope="module")
def case_outcomes(spark) -> dict[int, tuple[str, str | None]]:
    """All cases as one batch, as a stream sees them (and one Spark job, not forty)."""
    rows = [kafka_row(topic, value_of(value, n), n) for n, (_, topic, value, _) in enumerate(CASES)]
    return outcome(spark, rows)


def test_every_case_goes_exactly_once(case_outcomes):
    """Nothing lost, nothing doubled, and the 2 GB length prefixes did not take the session down."""
    assert sorted(case_outcomes) == list(range(len(CASES)))


@pytest.mark.parametrize("n", range(len(CASES)), ids=[c[0] for c in CASES])
def test_each_defect_gets_its_reason(case_outcomes, n):
    where, message = case_outcomes[n]
    expected = CASES[n][3]
    assert where == expected
    if not expected.startswith("silver_"):
        assert message and message.strip()


def test_ids_beyond_the_lookup_cap_are_dead_lettered_with_a_replay_hint(case_outcomes):
    n = next(i for i, c in enumerate(CASES) if c[0] == "id 2^31-1")
    where, message = case_outcomes[n]
    assert where == "unknown_schema_id" and "not looked up" in message and "replay" in message


def test_silver_and_dlq_rows_have_the_table_columns(spark):
    from spark_jobs.tables import SILVER_DLQ, silver_def

    checked = checked_batch(spark, [kafka_row(B, good(), 0), kafka_row(B, b"", 1)], TOPICS)
    for df, table in ((silver_rows(checked, B), silver_def("binance")), (dlq_rows(checked, NOW), SILVER_DLQ)):
        assert [(f.name, f.dataType.simpleString()) for f in df.schema.fields] == [
            (c.name, c.type) for c in table.columns]


def test_a_message_is_never_empty(spark):
    rows = [kafka_row(B, v, n) for n, v in enumerate([None, b"", b"\x01\x00\x00\x00\x07", good(price=0)])]
    dlq = dlq_rows(checked_of(spark, rows), NOW)
    assert dlq.where(F.coalesce(F.length("error_message"), F.lit(0)) == 0).count() == 0
    assert Counter(r.error_type for r in dlq.collect()) == {"truncated_frame": 2, "bad_magic_byte": 1,
                                                           "non_positive_price": 1}


def test_text_helper_prefixes_length():
    assert text("ab") == b"\x04ab" and varint(-1) == b"\x01" and varint(LONG_MIN)[-1] == 0x01
