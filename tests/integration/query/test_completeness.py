"""`k2 completeness` over a Gold-shaped Iceberg table whose missing ids the test chose."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from gold_fixture import gold_table

pytestmark = pytest.mark.integration

K2 = str(Path(sys.executable).parent / "k2")
H9 = datetime(2026, 3, 1, 9, tzinfo=UTC)

# BTCUSDT ids by hour (hour offset from 09:00): 100..104 at 09:xx; 105..107 dropped;
# 108..110 at 10:xx of which 109 came from REST backfill; 11:xx quiet; 111, 115 at 12:xx
# (112..114 dropped). ETHUSDT: 7, 8 at 10:xx. Kraken BTC/USD: 55 at 10:xx.
HELD = (
    [("BINANCE", "BTCUSDT", 0, tid, False) for tid in range(100, 105)]
    + [("BINANCE", "BTCUSDT", 1, 108, False), ("BINANCE", "BTCUSDT", 1, 109, True),
       ("BINANCE", "BTCUSDT", 1, 110, False)]
    + [("BINANCE", "BTCUSDT", 3, 111, False), ("BINANCE", "BTCUSDT", 3, 115, False)]
    + [("BINANCE", "ETHUSDT", 1, 7, False), ("BINANCE", "ETHUSDT", 1, 8, False)]
    + [("KRAKEN", "BTC/USD", 1, 55, False)]
)

SCHEMA = pa.schema([
    ("message_id", pa.string()), ("trade_id", pa.string()), ("symbol", pa.string()),
    ("exchange", pa.string()), ("timestamp", pa.timestamp("us", tz="UTC")),
    ("vendor_data", pa.map_(pa.string(), pa.string())),
])


@pytest.fixture(scope="module")
def gold(stack, run_id):
    data = pa.table({
        "message_id": [f"m-{ex}-{sym}-{tid}" for ex, sym, _, tid, _ in HELD],
        "trade_id": [str(tid) for *_, tid, _ in HELD],
        "symbol": [sym for _, sym, *_ in HELD],
        "exchange": [ex for ex, *_ in HELD],
        "timestamp": [H9 + timedelta(hours=h, seconds=tid % 60) for _, _, h, tid, _ in HELD],
        "vendor_data": [[("source", "rest")] if rest else [("buyer_is_maker", "true")] for *_, rest in HELD],
    }, schema=SCHEMA)
    with gold_table(f"k2test_complete_{run_id}", data) as namespace:
        yield namespace


def _k2(namespace: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([K2, "completeness", "--namespace", namespace, *args],
                          capture_output=True, text=True, timeout=120)


def test_each_hour_says_what_gold_holds_and_which_ids_are_missing(gold):
    out = _k2(gold, "--exchange", "binance", "--symbol", "BTCUSDT", "--start", "2026-03-01T09:00",
              "--end", "2026-03-01T13:00", "--format", "json")
    assert out.returncode == 1, out.stderr  # ids are missing
    rows = {r["hour"][11:16]: r for r in json.loads(out.stdout)["rows"]}
    assert set(rows) == {"09:00", "10:00", "12:00"}  # 11:00 held no trade
    assert {k: (r["status"], r["gold_trades"], r["missing_ids"], r["missing_ranges"]) for k, r in rows.items()} == {
        "09:00": ("complete", 5, 0, ""),
        "10:00": ("gaps", 3, 3, "105-107"),
        "12:00": ("gaps", 2, 3, "112-114"),
    }
    assert (rows["10:00"]["live_trades"], rows["10:00"]["backfill_trades"]) == (2, 1)
    assert (rows["10:00"]["first_trade_id"], rows["10:00"]["last_trade_id"]) == ("108", "110")
    assert rows["12:00"]["expected_trades"] == 5
    assert out.stderr.strip().endswith(
        "binance BTCUSDT [2026-03-01T09:00:00+00:00, 2026-03-01T13:00:00+00:00): "
        "2/4 hours complete (1 without trades), 6 missing ids in 2 ranges")


def test_a_gap_just_before_the_range_is_seen_from_the_hour_before(gold):
    out = _k2(gold, "--exchange", "binance", "--symbol", "BTCUSDT", "--start", "2026-03-01T10:00",
              "--end", "2026-03-01T11:00", "--format", "csv")
    assert out.returncode == 1, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2 and '"105-107"' in lines[1] and '"gaps"' in lines[1]


def test_a_complete_symbol_exits_0(gold):
    out = _k2(gold, "--exchange", "binance", "--symbol", "ETHUSDT", "--start", "2026-03-01T10:00",
              "--end", "2026-03-01T11:00")
    assert out.returncode == 0, out.stderr
    assert "1/1 hours complete (0 without trades), 0 missing ids in 0 ranges" in out.stderr
    assert "complete" in out.stdout and "ETHUSDT" in out.stdout


def test_bad_arguments_are_refused_clearly():
    out = subprocess.run([K2, "completeness", "--exchange", "binance", "--symbol", "X", "--last", "soon"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "'soon' is not a duration" in out.stderr
