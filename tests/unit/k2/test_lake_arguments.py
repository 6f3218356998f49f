"""k2.lake without services: bad arguments are refused before anything is read, bars are
aligned and their VWAP exact (the integration tier reads real tables: tests/integration/query)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pytest

from k2 import lake
from k2ops.cli import main


@pytest.fixture(autouse=True)
def no_catalog(monkeypatch):
    """Any catalog access fails the test: validation must come first."""
    def refuse(*_args, **_kwargs):
        raise AssertionError("the catalog was opened")

    monkeypatch.setattr(lake, "catalog", refuse)


def _ts(hh: int, mm: int = 0, day: int = 1) -> datetime:
    return datetime(2026, 3, day, hh, mm, tzinfo=UTC)


@pytest.mark.parametrize("interval", ["0s", "2d", "25h", "1441m", timedelta(milliseconds=500)])
def test_bar_intervals_outside_1s_to_1d_are_refused_naming_the_limits(interval):
    with pytest.raises(lake.QueryError, match=r"is outside the limits: from 1s to 1d"):
        lake.bars("binance", "BTCUSDT", interval)


def test_interval_limits_themselves_are_accepted():
    assert lake.parse_interval("1s") == timedelta(seconds=1)
    assert lake.parse_interval("1d") == lake.parse_interval("24h") == timedelta(days=1)
    assert lake.parse_interval(timedelta(minutes=5)) == timedelta(minutes=5)


def test_an_interval_that_is_no_duration_says_what_one_looks_like():
    with pytest.raises(lake.QueryError, match=r"'5 min' is not a duration like 30s, 15m, 2h or 7d"):
        lake.bars("binance", "BTCUSDT", "5 min")


@pytest.mark.parametrize("call, message", [
    (lambda: lake.trades("nope", "BTC-USD"), r"unknown exchange 'nope'; known: binance, kraken"),
    (lambda: lake.trades("binance", "BTCUSDT", to="excel"),
     r"to='excel' is not an output; use one of: arrow, pandas, polars"),
    (lambda: lake.snapshots("gold_crypto_trades", to="csv"), r"use one of: arrow, pandas, polars"),
    (lambda: lake.table("trades"), r"unknown table 'trades'; the lakehouse tables are: bronze_crypto_trades, "
                                   r"silver_binance_trades, silver_kraken_trades, (silver_\w+_trades, )*"
                                   r"silver_dlq, gold_crypto_trades, "
                                   r"completeness_ledger, completeness_unrecoverable"),
    (lambda: lake.trades("binance", "BTCUSDT", as_of="2026-03-01", snapshot_id=1),
     r"give as_of or snapshot_id, not both"),
    (lambda: lake.table("silver_dlq", as_of=_ts(9), snapshot_id=1), r"give as_of or snapshot_id, not both"),
    (lambda: lake.trades("binance", "BTCUSDT", "2026-03-01T10:00", "2026-03-01T09:00"),
     r"end 2026-03-01T09:00:00\+00:00 is not after start 2026-03-01T10:00:00\+00:00"),
    (lambda: lake.dlq("yesterday"), r"'yesterday' is not an ISO 8601 time"),
    (lambda: lake.bars("binance", "BTCUSDT", "1m", last="forever"), r"'forever' is not a duration"),
    (lambda: lake.trades("binance", "BTCUSDT", as_of=20260301), r"as_of=20260301 is not a time"),
    (lambda: lake.trades("binance", "BTCUSDT", limit=-1), r"limit=-1 is not a count of rows"),
])
def test_bad_arguments_are_refused_before_any_read(call, message):
    with pytest.raises(lake.QueryError, match=message):
        call()


def test_bar_ranges_widen_to_whole_bars_aligned_on_the_epoch():
    q = lake.TradeQuery("binance", "BTCUSDT", _ts(10, 3), _ts(10, 58))
    assert (lake.bar_query(q, timedelta(hours=1)).start, lake.bar_query(q, timedelta(hours=1)).end) == (
        _ts(10), _ts(11))
    assert (lake.bar_query(q, timedelta(hours=4)).start, lake.bar_query(q, timedelta(hours=4)).end) == (
        _ts(8), _ts(12))
    assert (lake.bar_query(q, timedelta(days=1)).start, lake.bar_query(q, timedelta(days=1)).end) == (
        _ts(0), _ts(0, day=2))
    aligned = lake.TradeQuery("binance", "BTCUSDT", _ts(10), _ts(11))
    assert lake.bar_query(aligned, timedelta(minutes=1)) == aligned


def test_vwap_is_exact_to_8_decimals_even_where_a_double_is_not():
    d = Decimal
    trades = pa.table({
        "timestamp": pa.array([_ts(10, 0), _ts(10, 1)], pa.timestamp("us", "UTC")),
        "trade_id": ["1", "2"],
        "price": pa.array([d("99999999.99999999"), d("0.00000001")], pa.decimal128(18, 8)),
        "quantity": pa.array([d("0.00000003"), d("0.00000001")], pa.decimal128(18, 8)),
    })
    [bar] = lake.bars_of(trades, None, timedelta(hours=1)).to_pylist()
    # (99999999.99999999 * 3e-8 + 1e-8 * 1e-8) / 4e-8 = 74999999.9999999925 + 0.0000000025 = 74999999.999999995
    assert bar["vwap"] == d("75000000.00000000")  # .999999995 rounds half up
    assert (bar["volume"], bar["trade_count"], bar["complete"]) == (d("0.00000004"), 2, None)


def test_cli_refuses_an_interval_outside_the_limits(capsys):
    assert main(["query", "bars", "--exchange", "binance", "--symbol", "BTCUSDT", "--interval", "2d"]) == 2
    assert "k2 query: bar interval '2d' is outside the limits: from 1s to 1d" in capsys.readouterr().err
