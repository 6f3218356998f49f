"""k2.iceberg_read (the reader `k2 query` uses) returns what pyiceberg returns, rows and
types, prunes to the hours asked, hands over to pyiceberg where it does not cover the
table, and `k2 query` reads through it without importing anything heavy."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual, LessThan

from gold_fixture import gold_rows, gold_table
from heavy_modules import heavy, k2_imports
from k2 import iceberg_read
from k2.catalog import catalog
from k2.contracts import GOLD_TABLE
from k2.iceberg_read import Condition
from k2.lake import TRADE_COLUMNS
from k2.settings import platform

pytestmark = pytest.mark.integration
D = Decimal


def _ts(hh: int, mm: int, ss: int = 0, us: int = 0) -> datetime:
    return datetime(2026, 3, 1, hh, mm, ss, us, tzinfo=UTC)


ROWS = [  # (exchange, symbol, time, trade_id, price, quantity)
    ("BINANCE", "BTCUSDT", _ts(8, 59, 59, 999999), "1", D("100"), D("1")),
    ("BINANCE", "BTCUSDT", _ts(9, 0), "2", D("101"), D("0.5")),
    ("BINANCE", "BTCUSDT", _ts(9, 30), "3", D("102"), D("0.25")),
    ("BINANCE", "ETHUSDT", _ts(9, 31), "4", D("5"), D("3")),
    ("KRAKEN", "BTC/USD", _ts(9, 45), "5", D("98"), D("1")),
    ("BINANCE", "BTCUSDT", _ts(9, 59, 59, 999999), "6", D("103"), D("2")),
    ("BINANCE", "BTCUSDT", _ts(10, 0), "7", D("104"), D("1")),
    ("BINANCE", "BTCUSDT", _ts(11, 15), "8", D("105"), D("1")),
]


@pytest.fixture(scope="module")
def gold(stack, run_id):
    with gold_table(f"k2test_fastread_{run_id}", gold_rows(ROWS)) as namespace:
        # A second append: two files in hour 09, as a stream's batches leave them.
        catalog(platform()).load_table(f"{namespace}.{GOLD_TABLE}").append(
            gold_rows([("BINANCE", "BTCUSDT", _ts(9, 50), "9", D("99"), D("4"))]))
        yield namespace


def _pyiceberg(namespace: str, conditions: list[Condition]):
    ops = {"=": EqualTo, ">=": GreaterThanOrEqual, "<": LessThan}
    terms = [ops[c.op](c.column, c.value.isoformat() if isinstance(c.value, datetime) else c.value)
             for c in conditions]
    table = catalog(platform()).load_table(f"{namespace}.{GOLD_TABLE}")
    return table.scan(row_filter=And(*terms), selected_fields=TRADE_COLUMNS).to_arrow()


def _one_hour(symbol: str, start: datetime, end: datetime) -> list[Condition]:
    return [Condition("exchange", "=", "BINANCE"), Condition("symbol", "=", symbol),
            Condition("timestamp", ">=", start), Condition("timestamp", "<", end)]


@pytest.mark.parametrize("symbol,start,end,trade_ids", [
    ("BTCUSDT", _ts(9, 0), _ts(10, 0), ["2", "3", "6", "9"]),  # both ends exact to the µs
    ("BTCUSDT", _ts(8, 0), _ts(12, 0), ["1", "2", "3", "6", "7", "8", "9"]),
    ("BTCUSDT", _ts(9, 30), _ts(9, 30, 0, 1), ["3"]),
    ("ETHUSDT", _ts(10, 0), _ts(11, 0), []),
    ("XRPUSDT", _ts(9, 0), _ts(10, 0), []),
], ids=["hour", "four-hours", "one-us", "no-rows", "unknown-symbol"])
def test_same_rows_and_types_as_pyiceberg(gold, symbol, start, end, trade_ids):
    conditions = _one_hour(symbol, start, end)
    fast = iceberg_read.scan(platform(), gold, GOLD_TABLE, conditions, TRADE_COLUMNS)
    slow = _pyiceberg(gold, conditions)
    assert fast is not None
    if trade_ids:
        assert fast.schema == slow.schema
    else:  # pyiceberg types an empty result from the table schema (large_string); rows' files say string
        assert fast.schema.names == slow.schema.names and fast.num_rows == slow.num_rows == 0
    order = [("timestamp", "ascending"), ("trade_id", "ascending")]
    assert fast.sort_by(order).to_pylist() == slow.sort_by(order).to_pylist()
    assert sorted(fast.column("trade_id").to_pylist(), key=int) == trade_ids


def test_one_hour_reads_only_that_hours_files(gold):
    s = platform()
    metadata = iceberg_read.metadata_location(s, gold, GOLD_TABLE)
    import json

    with open(iceberg_read._local_path(metadata)) as fh:
        meta = json.load(fh)
    snapshot = next(x for x in meta["snapshots"] if x["snapshot-id"] == meta["current-snapshot-id"])
    specs = {spec["spec-id"]: spec["fields"] for spec in meta["partition-specs"]}
    schema = next(x for x in meta["schemas"] if x["schema-id"] == meta["current-schema-id"])
    by_id = {f["id"]: f for f in schema["fields"]}
    every = iceberg_read._data_files(snapshot["manifest-list"], specs, by_id, [])
    hour = iceberg_read._data_files(snapshot["manifest-list"], specs, by_id, _one_hour("BTCUSDT", _ts(9, 0), _ts(10, 0)))
    assert len(every) == 5  # hours 08, 09 (two appends), 10, 11
    assert len(hour) == 2 and all("timestamp_hour=2026-03-01-09" in p for p in hour)


def test_missing_table_is_said(gold):
    with pytest.raises(iceberg_read.Missing):
        iceberg_read.scan(platform(), gold, "no_such_table", [], ["hour"])


def test_deletes_are_left_to_pyiceberg(stack, run_id):
    with gold_table(f"k2test_fastdel_{run_id}", gold_rows(ROWS)) as namespace:
        table = catalog(platform()).load_table(f"{namespace}.{GOLD_TABLE}")
        with table.transaction() as tx:
            tx.set_properties({"write.delete.mode": "merge-on-read"})
        table = catalog(platform()).load_table(f"{namespace}.{GOLD_TABLE}")
        table.delete(EqualTo("trade_id", "3"))
        conditions = _one_hour("BTCUSDT", _ts(9, 0), _ts(10, 0))
        fast = iceberg_read.scan(platform(), namespace, GOLD_TABLE, conditions, TRADE_COLUMNS)
        slow = _pyiceberg(namespace, conditions)
        # pyiceberg 0.12 rewrites files on delete (copy-on-write) whatever the property says;
        # either the fast reader sees the rewritten files or it declines (None) for delete files.
        assert fast is None or sorted(fast.column("trade_id").to_pylist()) == sorted(
            slow.column("trade_id").to_pylist()) == ["2", "6"]


@pytest.mark.parametrize("what", ["trades", "bars"])
def test_k2_query_imports_nothing_heavy(gold, what, tmp_path):
    code, modules, stderr = k2_imports(
        ["query", what, "--exchange", "binance", "--symbol", "BTCUSDT", "--namespace", gold,
         "--start", "2026-03-01T09:00", "--end", "2026-03-01T10:00"], tmp_path)
    assert code == 0, stderr
    assert f"4 {what} for binance BTCUSDT" in stderr  # 09:00, 09:30, 09:50, 09:59: four trades, four minutes
    assert heavy(modules) == []
