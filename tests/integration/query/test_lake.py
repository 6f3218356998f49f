"""The Python API (k2.lake) over Gold-, ledger- and DLQ-shaped Iceberg tables whose rows the
test chose: exact trades, bars at 1s to 1d computed by hand, the ledger's `complete`,
pandas and polars, the DLQ, any table, and time travel."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.expressions import EqualTo

from gold_fixture import gold_rows as _gold
from gold_fixture import gold_table
from k2 import lake
from k2.catalog import catalog
from k2.contracts import GOLD_TABLE, LEDGER_TABLE, SILVER_DLQ_TABLE
from k2.settings import platform

pytestmark = pytest.mark.integration

K2 = str(Path(sys.executable).parent / "k2")
D = Decimal


def _ts(hh: int, mm: int = 0, ss: int = 0, us: int = 0, day: int = 1) -> datetime:
    return datetime(2026, 3, day, hh, mm, ss, us, tzinfo=UTC)


# (exchange, symbol, time, trade_id, price, quantity)
BEFORE = ("BINANCE", "BTCUSDT", datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC), "199", D("90"), D("1"))
NINE = [  # the 09:xx trades
    ("BINANCE", "BTCUSDT", _ts(9, 15, 0), "200", D("100"), D("1")),
    ("BINANCE", "BTCUSDT", _ts(9, 15, 0, 500000), "201", D("102"), D("3")),
    ("BINANCE", "BTCUSDT", _ts(9, 15, 0, 500000), "202", D("101"), D("1")),  # same time as 201: after it by id
    ("BINANCE", "BTCUSDT", _ts(9, 15, 7), "203", D("104"), D("2")),
    ("BINANCE", "BTCUSDT", _ts(9, 59, 59, 999999), "204", D("98"), D("2")),
]
TEN = [
    ("BINANCE", "BTCUSDT", _ts(10, 0, 0), "205", D("103"), D("1")),
    ("BINANCE", "BTCUSDT", _ts(10, 30, 0), "206", D("105"), D("4")),
]
LATER = [
    ("BINANCE", "BTCUSDT", _ts(12, 45, 0), "207", D("110"), D("1")),  # 11:xx is quiet
    ("BINANCE", "BTCUSDT", _ts(0, 0, 0, day=2), "209", D("120"), D("1")),
]
OTHERS = [
    ("BINANCE", "ETHUSDT", _ts(10, 10, 0), "9", D("5"), D("1")),
    ("KRAKEN", "BTC/USD", _ts(10, 20, 0), "55", D("99"), D("2")),
]

# The ledger's word on BTCUSDT's hours: 03-02 00:00 has none (not computed yet).
LEDGER = pa.table({
    "exchange": ["binance"] * 4, "symbol": ["BTCUSDT"] * 4,
    "hour": [datetime(2026, 2, 28, 23, tzinfo=UTC), _ts(9), _ts(10), _ts(12)],
    "status": ["complete", "complete", "complete", "gaps"],
}, schema=pa.schema([("exchange", pa.string()), ("symbol", pa.string()),
                     ("hour", pa.timestamp("us", "UTC")), ("status", pa.string())]))

DLQ_SCHEMA = pa.schema([("topic", pa.string()), ("partition", pa.int32()), ("offset", pa.int64()),
                        ("error_type", pa.string()), ("error_message", pa.string()),
                        ("error_timestamp", pa.timestamp("us", "UTC"))])
DLQ = pa.table({
    "topic": ["t"] * 5, "partition": [0, 0, 1, 0, 0], "offset": [5, 6, 2, 7, 4],
    "error_type": ["decode_error", "non_positive_price", "decode_error", "decode_error", "decode_error"],
    "error_message": ["a", "b", "c", "d", "e"],
    "error_timestamp": [_ts(10, 5), _ts(10, 5), _ts(10, 1), _ts(11, 30), _ts(9, 59, 59)],
}, schema=DLQ_SCHEMA)


@pytest.fixture(scope="module")
def ns(stack, run_id):
    """A namespace with Gold, a completeness ledger and silver_dlq."""
    cat = catalog(platform())
    with gold_table(f"k2test_lake_{run_id}", _gold([BEFORE, *NINE, *TEN, *LATER, *OTHERS])) as namespace:
        try:
            cat.create_table(f"{namespace}.{LEDGER_TABLE}", schema=LEDGER.schema).append(LEDGER)
            cat.create_table(f"{namespace}.{SILVER_DLQ_TABLE}", schema=DLQ_SCHEMA).append(DLQ)
            yield namespace
        finally:
            for name in (LEDGER_TABLE, SILVER_DLQ_TABLE):
                if cat.table_exists(f"{namespace}.{name}"):
                    cat.purge_table(f"{namespace}.{name}")


def _bars(ns: str, interval: str, start: str, end: str, **kwargs) -> list[tuple]:
    rows = lake.bars("binance", "BTCUSDT", interval, start, end, namespace=ns, **kwargs).to_pylist()
    return [(r["timestamp"], r["open"], r["high"], r["low"], r["close"], r["volume"], r["vwap"],
             r["trade_count"], r["complete"]) for r in rows]


def test_trades_in_range_are_exactly_those_of_the_symbol_in_start_to_end(ns):
    result = lake.trades("binance", "BTCUSDT", "2026-03-01T09:15", "2026-03-01T10:00", namespace=ns)
    assert result["trade_id"].to_pylist() == ["200", "201", "202", "203", "204"]  # not 205 at 10:00
    assert result["price"].to_pylist() == [D("100"), D("102"), D("101"), D("104"), D("98")]
    assert set(result["symbol"].to_pylist()) == {"BTCUSDT"}
    first_two = lake.trades("binance", "BTCUSDT", _ts(9), _ts(11), limit=2, namespace=ns)
    assert first_two["trade_id"].to_pylist() == ["200", "201"]
    kraken = lake.trades("kraken", "BTC/USD", datetime(2026, 3, 1, 10), datetime(2026, 3, 1, 11), namespace=ns)
    assert kraken["trade_id"].to_pylist() == ["55"]  # naive datetimes are UTC


def test_one_second_bars(ns):
    assert _bars(ns, "1s", "2026-03-01T09:00", "2026-03-01T10:00") == [
        # 100*1 + 102*3 + 101*1 = 507 over 5: 101.4; close is 202 (after 201 at the same µs)
        (_ts(9, 15, 0), D("100"), D("102"), D("100"), D("101"), D("5"), D("101.4"), 3, True),
        (_ts(9, 15, 7), D("104"), D("104"), D("104"), D("104"), D("2"), D("104"), 1, True),
        (_ts(9, 59, 59), D("98"), D("98"), D("98"), D("98"), D("2"), D("98"), 1, True),
    ]


def test_one_minute_bars_round_the_vwap_half_up_to_8_decimals(ns):
    # (507 + 104*2) / 7 = 715 / 7 = 102.142857142857...
    assert _bars(ns, "1m", "2026-03-01T09:15", "2026-03-01T09:16") == [
        (_ts(9, 15), D("100"), D("104"), D("100"), D("104"), D("7"), D("102.14285714"), 4, True)]


def test_one_hour_bars_and_the_ledger_word_on_each_hour(ns):
    assert _bars(ns, "1h", "2026-03-01T09:00", "2026-03-01T13:00") == [
        # (715 + 98*2) / 9 = 911 / 9 = 101.2222...
        (_ts(9), D("100"), D("104"), D("98"), D("98"), D("9"), D("101.22222222"), 5, True),
        # (103 + 105*4) / 5 = 104.6
        (_ts(10), D("103"), D("105"), D("103"), D("105"), D("5"), D("104.6"), 2, True),
        (_ts(12), D("110"), D("110"), D("110"), D("110"), D("1"), D("110"), 1, False),  # gaps
    ]


def test_one_day_bars_cover_whole_utc_days_and_every_hour_of_them(ns):
    expected = [
        (datetime(2026, 2, 28, tzinfo=UTC), D("90"), D("90"), D("90"), D("90"), D("1"), D("90"), 1, True),
        # (911 + 523 + 110) / 15 = 1544 / 15 = 102.9333...; 12:00 has gaps: the day is not complete
        (_ts(0), D("100"), D("110"), D("98"), D("110"), D("15"), D("102.93333333"), 8, False),
        (_ts(0, day=2), D("120"), D("120"), D("120"), D("120"), D("1"), D("120"), 1, None),  # no ledger word
    ]
    assert _bars(ns, "1d", "2026-02-28T00:00", "2026-03-03T00:00") == expected
    # A range inside a day is widened to the whole day's bar.
    assert _bars(ns, "1d", "2026-03-01T10:00", "2026-03-01T10:01") == [expected[1]]


def test_a_multi_hour_bar_is_complete_only_if_all_its_hours_are(ns):
    rows = _bars(ns, "4h", "2026-03-01T08:00", "2026-03-01T16:00")
    assert [(r[0], r[7], r[8]) for r in rows] == [
        (_ts(8), 7, True),  # 09:00 and 10:00 both complete
        (_ts(12), 1, False),  # 12:00 has gaps
    ]


def test_pandas_and_polars(ns):
    import pandas as pd
    import polars as pl

    df = lake.trades("binance", "BTCUSDT", "2026-03-01T09:15", "2026-03-01T10:00", namespace=ns, to="pandas")
    assert isinstance(df, pd.DataFrame) and len(df) == 5
    assert str(df["timestamp"].dtype) == "datetime64[us, UTC]"
    assert df["trade_id"].tolist() == ["200", "201", "202", "203", "204"]
    assert df["price"].tolist() == [D("100"), D("102"), D("101"), D("104"), D("98")]

    bars = lake.bars("binance", "BTCUSDT", "1h", "2026-03-01T09:00", "2026-03-01T13:00", namespace=ns, to="polars")
    assert isinstance(bars, pl.DataFrame) and bars.height == 3
    assert bars.schema["timestamp"] == pl.Datetime("us", "UTC")
    assert bars.schema["vwap"] == pl.Decimal(18, 8) and bars.schema["trade_count"] == pl.Int64
    assert bars["vwap"].to_list() == [D("101.22222222"), D("104.6"), D("110")]
    assert bars["complete"].to_list() == [True, True, False]


def test_dlq_by_error_time_and_type(ns):
    rows = lake.dlq("2026-03-01T10:00", "2026-03-01T11:00", namespace=ns).to_pylist()
    assert [(r["partition"], r["offset"], r["error_type"]) for r in rows] == [
        (1, 2, "decode_error"), (0, 5, "decode_error"), (0, 6, "non_positive_price")]
    decode = lake.dlq("2026-03-01T10:00", "2026-03-01T11:00", error_type="decode_error", namespace=ns, to="pandas")
    assert decode["offset"].tolist() == [2, 5]


def test_any_table_with_a_filter_and_columns(ns):
    eth = lake.table(GOLD_TABLE, where="symbol = 'ETHUSDT'", columns=["trade_id", "price"], namespace=ns)
    assert eth.column_names == ["trade_id", "price"] and eth.to_pylist() == [{"trade_id": "9", "price": D("5")}]
    kraken = lake.table(GOLD_TABLE, where=EqualTo("exchange", "KRAKEN"), namespace=ns)
    assert kraken["trade_id"].to_pylist() == ["55"]
    gaps = lake.table(LEDGER_TABLE, where="status = 'gaps'", namespace=ns)
    assert gaps["hour"].to_pylist() == [_ts(12)]
    assert len(lake.table(GOLD_TABLE, limit=3, namespace=ns)) == 3


def test_errors_name_what_is_valid(ns):
    with pytest.raises(lake.QueryError, match=r"unknown table 'gold'; the lakehouse tables are: .*gold_crypto_trades"):
        lake.table("gold", namespace=ns)
    with pytest.raises(lake.QueryError, match=r"has no column 'nope'; its columns: message_id, trade_id"):
        lake.table(GOLD_TABLE, columns=["trade_id", "nope"], namespace=ns)
    with pytest.raises(lake.QueryError, match=r"is not a predicate pyiceberg parses"):
        lake.table(GOLD_TABLE, where="symbol === 'X'", namespace=ns)
    with pytest.raises(lake.QueryError, match=r"cannot filter k2test_lake_\w+\.gold_crypto_trades: .*nope"):
        lake.table(GOLD_TABLE, where="nope = 1", namespace=ns)
    with pytest.raises(lake.QueryError, match=r"table k2test_lake_\w+\.bronze_crypto_trades does not exist"):
        lake.table("bronze_crypto_trades", namespace=ns)
    with pytest.raises(lake.QueryError, match=r"unknown exchange 'nasdaq'; known: binance, kraken, coinbase, bybit, okx"):
        lake.trades("nasdaq", "AAPL", namespace=ns)
    with pytest.raises(lake.QueryError, match=r"use one of: arrow, pandas, polars"):
        lake.dlq(namespace=ns, to="excel")


def test_cli_bars_at_an_interval(ns):
    out = subprocess.run(
        [K2, "query", "bars", "--exchange", "binance", "--symbol", "BTCUSDT", "--namespace", ns,
         "--interval", "4h", "--start", "2026-03-01T09:30", "--end", "2026-03-01T13:00", "--format", "csv"],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = [(r["timestamp"], r["trade_count"], r["vwap"], r["complete"]) for r in csv.DictReader(io.StringIO(out.stdout))]
    # 08:00-12:00: 09:xx and 10:xx: (911 + 523) / 14 = 102.428571428...
    assert rows == [("2026-03-01 08:00:00.000000Z", "7", "102.42857143", "true"),
                    ("2026-03-01 12:00:00.000000Z", "1", "110.00000000", "false")]
    assert "2 bars for binance BTCUSDT [2026-03-01T08:00:00+00:00, 2026-03-01T16:00:00+00:00)" in out.stderr


def test_time_travel_reads_the_rows_of_then(stack, run_id):
    cat = catalog(platform())
    with gold_table(f"k2test_lake_tt_{run_id}", _gold(NINE)) as ns:
        [first] = lake.snapshots(GOLD_TABLE, namespace=ns).to_pylist()
        assert first["operation"] == "append" and first["parent"] is None
        time.sleep(0.05)
        noted = datetime.now(UTC)
        time.sleep(0.05)
        cat.load_table(f"{ns}.{GOLD_TABLE}").append(_gold(TEN))

        def ids(**kwargs) -> list[str]:
            return lake.trades("binance", "BTCUSDT", _ts(9), _ts(11), namespace=ns, **kwargs)["trade_id"].to_pylist()

        nine = ["200", "201", "202", "203", "204"]
        assert ids() == [*nine, "205", "206"]
        assert ids(as_of=noted) == nine
        assert ids(as_of=noted.isoformat()) == nine
        assert ids(as_of=first["committed_at"]) == nine  # at or before: its own commit time counts
        assert ids(snapshot_id=first["snapshot_id"]) == nine
        assert len(lake.table(GOLD_TABLE, snapshot_id=first["snapshot_id"], namespace=ns)) == 5
        pinned = lake.bars("binance", "BTCUSDT", "1h", _ts(9), _ts(11), snapshot_id=first["snapshot_id"], namespace=ns)
        assert pinned["trade_count"].to_pylist() == [5]
        assert pinned["complete"].to_pylist() == [None]  # no ledger in this namespace

        second = lake.snapshots(GOLD_TABLE, namespace=ns).to_pylist()[1]
        assert second["parent"] == first["snapshot_id"] and second["committed_at"] >= noted - timedelta(milliseconds=1)

        before = first["committed_at"] - timedelta(milliseconds=1)
        with pytest.raises(lake.QueryError, match=re.escape(
                f"{ns}.gold_crypto_trades has no snapshot at or before {before.isoformat()}: "
                f"its first snapshot was committed at {first['committed_at'].isoformat()}")):
            ids(as_of=before)
        with pytest.raises(lake.QueryError, match=r"has no snapshot 12345 \(expired, or of another table\)"):
            ids(snapshot_id=12345)
        with pytest.raises(lake.QueryError, match="give as_of or snapshot_id, not both"):
            ids(as_of=noted, snapshot_id=first["snapshot_id"])


def test_the_ledger_is_read_as_it_was_then_too(ns):
    """Bars pinned before the ledger had any snapshot have no word on completeness."""
    ledger_first = lake.snapshots(LEDGER_TABLE, namespace=ns)["committed_at"][0].as_py()
    gold_first = lake.snapshots(GOLD_TABLE, namespace=ns).to_pylist()[0]
    assert gold_first["committed_at"] < ledger_first  # the fixture appended Gold first
    then = _bars(ns, "1h", "2026-03-01T09:00", "2026-03-01T11:00", snapshot_id=gold_first["snapshot_id"])
    assert [(r[0], r[7], r[8]) for r in then] == [(_ts(9), 5, None), (_ts(10), 2, None)]
    now = _bars(ns, "1h", "2026-03-01T09:00", "2026-03-01T11:00", as_of=ledger_first)
    assert [(r[0], r[8]) for r in now] == [(_ts(9), True), (_ts(10), True)]
