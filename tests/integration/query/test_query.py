"""`k2 query` over a Gold-shaped Iceberg table: exact trades, exact bars, hour pruning."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from gold_fixture import gold_table
from k2.catalog import catalog
from k2.contracts import GOLD_TABLE
from k2.lake import TradeQuery, bars_of, scan_trades
from k2.settings import platform

pytestmark = pytest.mark.integration

K2 = str(Path(sys.executable).parent / "k2")
D = Decimal


def _ts(hh: int, mm: int, ss: int, us: int = 0) -> datetime:
    return datetime(2026, 3, 1, hh, mm, ss, us, tzinfo=UTC)


# (exchange, symbol, time, trade_id, price, quantity, side)
ROWS = [
    ("BINANCE", "BTCUSDT", _ts(9, 59, 59), "99", D("100.00000000"), D("1.00000000"), "BUY"),
    ("BINANCE", "BTCUSDT", _ts(10, 0, 1), "100", D("101.00000000"), D("0.50000000"), "SELL"),
    ("BINANCE", "BTCUSDT", _ts(10, 0, 30), "101", D("103.50000000"), D("0.25000000"), "BUY"),
    ("BINANCE", "BTCUSDT", _ts(10, 0, 59, 999999), "102", D("99.25000000"), D("0.25000000"), "SELL"),
    ("BINANCE", "BTCUSDT", _ts(10, 1, 0), "103", D("102.00000000"), D("2.00000000"), "BUY"),
    ("BINANCE", "ETHUSDT", _ts(10, 0, 5), "7", D("5.00000000"), D("3.00000000"), "BUY"),
    ("KRAKEN", "BTC/USD", _ts(10, 0, 6), "55", D("98.00000000"), D("1.00000000"), "SELL"),
    ("BINANCE", "BTCUSDT", _ts(11, 0, 0), "104", D("105.00000000"), D("1.00000000"), "BUY"),
]

SCHEMA = pa.schema([
    ("message_id", pa.string()), ("trade_id", pa.string()), ("symbol", pa.string()),
    ("exchange", pa.string()), ("timestamp", pa.timestamp("us", tz="UTC")),
    ("price", pa.decimal128(18, 8)), ("quantity", pa.decimal128(18, 8)),
    ("base_asset", pa.string()), ("quote_currency", pa.string()), ("side", pa.string()),
])


@pytest.fixture(scope="module")
def gold(stack, run_id):
    data = pa.table({
        "message_id": [f"m-{r[0]}-{r[3]}" for r in ROWS],
        "trade_id": [r[3] for r in ROWS],
        "symbol": [r[1] for r in ROWS],
        "exchange": [r[0] for r in ROWS],
        "timestamp": [r[2] for r in ROWS],
        "price": [r[4] for r in ROWS],
        "quantity": [r[5] for r in ROWS],
        "base_asset": ["BTC" if r[1] != "ETHUSDT" else "ETH" for r in ROWS],
        "quote_currency": ["USD" if r[0] == "KRAKEN" else "USDT" for r in ROWS],
        "side": [r[6] for r in ROWS],
    }, schema=SCHEMA)
    with gold_table(f"k2test_query_{run_id}", data) as namespace:
        yield namespace


def test_trades_in_range_are_exact_and_ordered(gold):
    q = TradeQuery("binance", "BTCUSDT", _ts(10, 0, 0), _ts(11, 0, 0), namespace=gold)
    result = scan_trades(platform(), q).to_pydict()
    assert result["trade_id"] == ["100", "101", "102", "103"]
    assert result["price"] == [D("101"), D("103.5"), D("99.25"), D("102")]


def test_one_hour_range_prunes_to_that_hours_files(gold):
    table = catalog(platform()).load_table(f"{gold}.{GOLD_TABLE}")
    q = TradeQuery("binance", "BTCUSDT", _ts(10, 0, 0), _ts(11, 0, 0), namespace=gold)
    planned = list(table.scan(row_filter=q.row_filter()).plan_files())
    all_files = list(table.scan().plan_files())
    assert len(all_files) == 3  # hours 09, 10, 11
    assert len(planned) == 1
    assert "timestamp_hour=2026-03-01-10" in planned[0].file.file_path


def test_one_minute_bars(gold):
    q = TradeQuery("binance", "BTCUSDT", _ts(10, 0, 0), _ts(10, 2, 0), namespace=gold)
    result = bars_of(scan_trades(platform(), q)).to_pylist()
    assert len(result) == 2
    first, second = result
    assert first["timestamp"] == _ts(10, 0, 0)
    assert (first["open"], first["high"], first["low"], first["close"]) == (
        D("101"), D("103.5"), D("99.25"), D("99.25"))
    assert first["volume"] == D("1.0") and first["trade_count"] == 3
    # vwap = (101*0.5 + 103.5*0.25 + 99.25*0.25) / 1.0
    assert first["vwap"] == D("101.18750000")
    assert (second["open"], second["close"], second["volume"], second["trade_count"]) == (
        D("102"), D("102"), D("2"), 1)
    assert first["complete"] is None and second["complete"] is None  # no ledger for this namespace


def test_bars_say_complete_as_the_ledger_says_of_their_hour(gold):
    q = TradeQuery("binance", "BTCUSDT", _ts(9, 0, 0), _ts(12, 0, 0), namespace=gold)
    statuses = pa.table({"hour": [_ts(9, 0, 0), _ts(10, 0, 0), _ts(11, 0, 0)],
                         "status": ["complete", "gaps", "not_applicable"]},
                        schema=pa.schema([("hour", pa.timestamp("us", "UTC")), ("status", pa.string())]))
    result = bars_of(scan_trades(platform(), q), statuses).to_pylist()
    assert [(r["timestamp"], r["complete"]) for r in result] == [
        (_ts(9, 59, 0), True), (_ts(10, 0, 0), False), (_ts(10, 1, 0), False), (_ts(11, 0, 0), None)]


def test_cli_csv_output(gold):
    out = subprocess.run(
        [K2, "query", "trades", "--exchange", "kraken", "--symbol", "BTC/USD", "--namespace", gold,
         "--start", "2026-03-01T10:00", "--end", "2026-03-01T11:00", "--format", "csv"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [(r["trade_id"], r["side"]) for r in rows] == [("55", "SELL")]
    assert "1 trades for kraken BTC/USD" in out.stderr


def test_cli_rejects_bad_arguments_clearly():
    out = subprocess.run([K2, "query", "bars", "--exchange", "binance", "--symbol", "X",
                          "--start", "yesterday"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "'yesterday' is not an ISO 8601 time" in out.stderr
