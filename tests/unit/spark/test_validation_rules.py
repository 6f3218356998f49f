"""Each Silver validation rule on its own, on rows shaped as ``classify`` sees them after decode.

The rows skip the wire and Avro (test_silver_decode covers those): each is a valid
decoded trade with one column changed by hand, so a failure names exactly one rule,
and each boundary is written out (the clock-skew limit itself vs one microsecond past
it, the genesis-block instant vs one microsecond before, the smallest positive price).
All cases run as one DataFrame and one Spark job, as a stream's batch would.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from spark_jobs.validation import classify, clock_columns, rules

TOPICS = {"binance": "v.binance", "kraken": "v.kraken"}
NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
SKEW_S = 60.0
LIMIT = NOW + timedelta(seconds=SKEW_S)  # the latest instant a trade may carry
GENESIS = datetime(2009, 1, 3, tzinfo=UTC)  # the earliest (Bitcoin's genesis block)
US = timedelta(microseconds=1)
HEADER = b"\x00\x00\x00\x00\x07"  # magic 0, schema id 7
SMALLEST = Decimal("0.00000001")  # the smallest positive decimal(18,8)

# What decode hands to the rules: the Bronze columns the rules read, the header and
# decode outcome, and the v3 columns typed as in Silver.
DDL = ("n int, value binary, topic string, schema_id int, schema_problem string, decoded boolean, "
       "out_of_range string, message_id string, trade_id string, symbol string, exchange string, "
       "timestamp timestamp, price decimal(18,8), quantity decimal(18,8), base_asset string, "
       "quote_currency string, side string, ingestion_timestamp timestamp, vendor_data map<string,string>")
COLUMNS = [c.split()[0] for c in DDL.split(", ")]

BINANCE = {
    "value": HEADER + b"avro body", "topic": TOPICS["binance"], "schema_id": 7, "schema_problem": None,
    "decoded": True, "out_of_range": "", "message_id": "m-1", "trade_id": "1", "symbol": "BTCUSDT",
    "exchange": "BINANCE", "timestamp": NOW - timedelta(seconds=10), "price": Decimal("65000.12345678"),
    "quantity": Decimal("0.001"), "base_asset": "BTC", "quote_currency": "USDT", "side": "BUY",
    "ingestion_timestamp": NOW - timedelta(seconds=9), "vendor_data": {"is_best_match": "true"},
}
KRAKEN = {**BINANCE, "topic": TOPICS["kraken"], "symbol": "BTC/USD", "exchange": "KRAKEN",
          "quote_currency": "USD", "side": "SELL", "vendor_data": {}}

VALID = None  # expected error_type of a row that passes every rule
CASES: list[tuple[str, dict, str | None]] = [
    # (what, the row, the error_type it must get)
    ("valid binance trade", BINANCE, VALID),
    ("valid kraken trade", KRAKEN, VALID),
    # truncated_frame: fewer than 5 bytes
    ("null value", {**BINANCE, "value": None}, "truncated_frame"),
    ("4-byte value", {**BINANCE, "value": HEADER[:4]}, "truncated_frame"),
    ("exactly the 5-byte header", {**BINANCE, "value": HEADER}, VALID),
    # bad_magic_byte: first byte not 0x00
    ("magic 0x01", {**BINANCE, "value": b"\x01" + HEADER[1:] + b"body"}, "bad_magic_byte"),
    ("magic 0xff", {**BINANCE, "value": b"\xff" + HEADER[1:] + b"body"}, "bad_magic_byte"),
    # unknown_schema_id: the id resolver left a problem
    ("schema id with a problem", {**BINANCE, "schema_problem": "schema id 7 is x.Other"}, "unknown_schema_id"),
    # decode_error: the body did not decode
    ("undecoded body", {**BINANCE, "decoded": None}, "decode_error"),
    # unknown_topic: a topic outside the stream's map
    ("topic of no exchange", {**BINANCE, "topic": "v.nasdaq"}, "unknown_topic"),
    ("null topic", {**BINANCE, "topic": None}, "unknown_topic"),
    # value_out_of_range: decoded, but does not fit decimal(18,8)
    ("price out of range", {**BINANCE, "out_of_range": "price", "price": None}, "value_out_of_range"),
    ("out_of_range null counts as none", {**BINANCE, "out_of_range": None}, VALID),
    # missing_field: every required text empty or null, every other required field null
    *[(f"empty {c}", {**BINANCE, c: ""}, "missing_field")
      for c in ("message_id", "trade_id", "symbol", "base_asset", "quote_currency")],
    *[(f"null {c}", {**BINANCE, c: None}, "missing_field")
      for c in ("message_id", "trade_id", "symbol", "base_asset", "quote_currency", "exchange", "timestamp",
                "price", "quantity", "side", "ingestion_timestamp")],
    ("null vendor_data is allowed", {**BINANCE, "vendor_data": None}, VALID),
    # exchange_topic_mismatch: the record's exchange is not its topic's
    ("kraken record on the binance topic", {**BINANCE, "exchange": "KRAKEN"}, "exchange_topic_mismatch"),
    ("binance record on the kraken topic", {**KRAKEN, "exchange": "BINANCE"}, "exchange_topic_mismatch"),
    # non_positive_price / non_positive_quantity: > 0 required
    ("zero price", {**BINANCE, "price": Decimal("0")}, "non_positive_price"),
    ("negative price", {**BINANCE, "price": -SMALLEST}, "non_positive_price"),
    ("smallest positive price", {**BINANCE, "price": SMALLEST}, VALID),
    ("zero quantity", {**KRAKEN, "quantity": Decimal("0")}, "non_positive_quantity"),
    ("negative quantity", {**KRAKEN, "quantity": Decimal("-5")}, "non_positive_quantity"),
    ("smallest positive quantity", {**KRAKEN, "quantity": SMALLEST}, VALID),
    # future_timestamp: later than processing time + clock skew
    ("timestamp at the skew limit", {**BINANCE, "timestamp": LIMIT}, VALID),
    ("timestamp 1 µs past the limit", {**BINANCE, "timestamp": LIMIT + US}, "future_timestamp"),
    ("ingestion at the skew limit", {**BINANCE, "ingestion_timestamp": LIMIT}, VALID),
    ("ingestion 1 µs past the limit", {**BINANCE, "ingestion_timestamp": LIMIT + US}, "future_timestamp"),
    # ancient_timestamp: before Bitcoin's genesis block
    ("timestamp at genesis", {**BINANCE, "timestamp": GENESIS}, VALID),
    ("timestamp 1 µs before genesis", {**BINANCE, "timestamp": GENESIS - US}, "ancient_timestamp"),
    ("ingestion 1 µs before genesis", {**KRAKEN, "ingestion_timestamp": GENESIS - US}, "ancient_timestamp"),
    ("timestamp at the epoch", {**BINANCE, "timestamp": datetime(1970, 1, 1, tzinfo=UTC)}, "ancient_timestamp"),
    # symbol_mismatch: symbol is base + the topic's separator + quote
    ("binance symbol of another pair", {**BINANCE, "symbol": "ETHUSDT"}, "symbol_mismatch"),
    ("binance symbol with a slash", {**BINANCE, "symbol": "BTC/USDT"}, "symbol_mismatch"),
    ("kraken symbol without its slash", {**KRAKEN, "symbol": "BTCUSD"}, "symbol_mismatch"),
    # The first rule that fails names the row.
    ("price and quantity both zero", {**BINANCE, "price": Decimal("0"), "quantity": Decimal("0")},
     "non_positive_price"),
    ("undecoded on an unknown topic", {**BINANCE, "decoded": None, "topic": "v.nasdaq"}, "decode_error"),
    ("short frame with a schema problem", {**BINANCE, "value": b"\x00", "schema_problem": "x"}, "truncated_frame"),
]
EVERY_RULE = ("truncated_frame", "bad_magic_byte", "unknown_schema_id", "decode_error", "unknown_topic",
              "value_out_of_range", "missing_field", "exchange_topic_mismatch", "non_positive_price",
              "non_positive_quantity", "future_timestamp", "ancient_timestamp", "symbol_mismatch")


@pytest.fixture(scope="module")
def classified(spark) -> dict[int, tuple[str | None, str | None]]:
    """Row number -> (error_type, error_message), all cases in one batch."""
    rows = [tuple([n] + [row[c] for c in COLUMNS[1:]]) for n, (_, row, _) in enumerate(CASES)]
    frame = spark.createDataFrame(rows, DDL).withColumns(clock_columns(NOW, SKEW_S))
    out = classify(frame, rules(TOPICS, SKEW_S)).collect()
    assert len(out) == len(CASES)
    return {r.n: (r.error_type, r.error_message) for r in out}


def test_every_rule_has_a_case_and_the_rule_list_has_no_other(spark):
    """Building the rules needs a session (they are JVM columns)."""
    assert {c[2] for c in CASES} - {VALID} == set(EVERY_RULE)
    assert [r.error_type for r in rules(TOPICS, SKEW_S)] == list(EVERY_RULE)


@pytest.mark.parametrize("n", range(len(CASES)), ids=[c[0] for c in CASES])
def test_each_row_gets_the_rule_it_breaks(classified, n):
    error_type, message = classified[n]
    expected = CASES[n][2]
    assert error_type == expected
    if expected is VALID:
        assert message is None
    else:
        assert message and message.strip()


def message_of(classified, what: str) -> str:
    n = next(i for i, c in enumerate(CASES) if c[0] == what)
    return classified[n][1]


def test_messages_name_the_offending_values(classified):
    assert message_of(classified, "4-byte value") == "frame of 4 bytes is shorter than the 5-byte wire header"
    assert message_of(classified, "magic 0xff") == (
        "magic byte is 0xFF, expected 0x00 (not Confluent wire format)")
    assert message_of(classified, "schema id with a problem") == "schema id 7 is x.Other"
    assert message_of(classified, "undecoded body") == (
        "Avro body of 9 bytes does not decode with writer schema id 7")
    assert message_of(classified, "topic of no exchange") == "topic v.nasdaq is not one of this stream's trade topics"
    assert message_of(classified, "empty trade_id") == "required field(s) missing or empty: trade_id"
    assert message_of(classified, "null price") == "required field(s) missing or empty: price"
    assert message_of(classified, "kraken record on the binance topic") == (
        "exchange KRAKEN does not match topic v.binance (expects BINANCE)")
    assert message_of(classified, "timestamp 1 µs past the limit") == (
        "timestamp 2026-01-01 12:01:00.000001 is more than 60s ahead of processing time 2026-01-01T12:00:00+00:00")
    assert message_of(classified, "ingestion 1 µs past the limit").startswith(
        "ingestion_timestamp 2026-01-01 12:01:00.000001 is more than 60s ahead")
    assert message_of(classified, "timestamp 1 µs before genesis").startswith(
        "timestamp 2009-01-02 23:59:59.999999 is before 2009-01-03T00:00:00+00:00")
    assert message_of(classified, "kraken symbol without its slash") == (
        "symbol BTCUSD is inconsistent with base BTC / quote USD (expected BTC/USD)")
    assert "price" in message_of(classified, "zero price") and "is not > 0" in message_of(classified, "zero price")
    assert message_of(classified, "price out of range").startswith("field(s) price decode but do not fit")


def test_classify_keeps_the_input_columns_and_adds_only_the_verdict(spark):
    frame = spark.createDataFrame([tuple([0] + [BINANCE[c] for c in COLUMNS[1:]])], DDL)
    out = classify(frame.withColumns(clock_columns(NOW, SKEW_S)), rules(TOPICS, SKEW_S))
    assert out.columns[-2:] == ["error_type", "error_message"]
    assert out.columns[:len(COLUMNS)] == COLUMNS
