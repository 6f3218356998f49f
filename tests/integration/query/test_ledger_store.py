"""The completeness ledger table, kept from a Gold-shaped table the test writes step by step.

Each step appends trades to Gold as the Gold stream would (live trades, then the trades
a REST backfill brought late), or records on the DLQ topic a range the exchange no longer
serves as a worker would, and runs one incremental update; the expected rows are written
out by hand from the ids each step holds.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from gold_fixture import gold_table
from k2 import contracts, ledger_store, loss_windows, unrecoverable
from k2.catalog import catalog
from k2.settings import platform

pytestmark = pytest.mark.integration

H9 = datetime(2026, 3, 1, 9, tzinfo=UTC)
SCHEMA = pa.schema([
    ("message_id", pa.string()), ("trade_id", pa.string()), ("symbol", pa.string()),
    ("exchange", pa.string()), ("timestamp", pa.timestamp("us", tz="UTC")),
    ("price", pa.decimal128(18, 8)), ("quantity", pa.decimal128(18, 8)), ("side", pa.string()),
    ("base_asset", pa.string()), ("quote_currency", pa.string()),
    ("vendor_data", pa.map_(pa.string(), pa.string())),
])
K2 = str(Path(sys.executable).parent / "k2")


def _trades(rows: list[tuple[str, str, int, int, bool]]) -> pa.Table:
    """(exchange enum, symbol, hour offset from 09:00, trade id, from REST) -> Gold rows."""
    return pa.table({
        "message_id": [f"m-{ex}-{sym}-{tid}" for ex, sym, _, tid, _ in rows],
        "trade_id": [str(tid) for *_, tid, _ in rows],
        "symbol": [sym for _, sym, *_ in rows],
        "exchange": [ex for ex, *_ in rows],
        "timestamp": [H9 + timedelta(hours=h, seconds=tid % 60) for _, _, h, tid, _ in rows],
        "price": [Decimal("100")] * len(rows), "quantity": [Decimal("1")] * len(rows),
        "side": ["BUY"] * len(rows), "base_asset": ["BTC"] * len(rows),
        "quote_currency": ["USD" if ex == "KRAKEN" else "USDT" for ex, *_ in rows],
        "vendor_data": [[("source", "rest")] if rest else [("buyer_is_maker", "true")] for *_, rest in rows],
    }, schema=SCHEMA)


def _ledger(namespace: str) -> dict[tuple, dict]:
    rows = catalog(platform()).load_table(ledger_store.identifier(namespace)).scan().to_arrow().to_pylist()
    return {(r["exchange"], r["symbol"], r["hour"]): r for r in rows}


def _row(ledger: dict, exchange: str, symbol: str, hour: int) -> tuple:
    r = ledger[(exchange, symbol, H9 + timedelta(hours=hour))]
    ranges = [(x["first_id"], x["last_id"]) for x in r["missing_ranges"] or []]
    return (r["status"], r["gold_trades"], r["backfill_trades"], r["expected_trades"], r["missing_ids"], ranges,
            r["first_trade_id"], r["last_trade_id"])


@pytest.fixture
def gold(stack, run_id):
    live = _trades([("BINANCE", "BTCUSDT", 0, tid, False) for tid in range(100, 105)]
                   + [("BINANCE", "BTCUSDT", 1, 108, False), ("BINANCE", "BTCUSDT", 1, 110, False),
                      ("BINANCE", "BTCUSDT", 3, 111, False)]
                   + [("KRAKEN", "BTC/USD", 1, 55, False), ("KRAKEN", "BTC/USD", 1, 56, False)])
    with gold_table(f"k2test_ledger_{run_id}", live) as namespace:
        try:
            yield namespace
        finally:
            for table in (ledger_store.identifier(namespace), unrecoverable.identifier(namespace),
                          loss_windows.identifier(namespace)):
                if catalog(platform()).table_exists(table):
                    catalog(platform()).purge_table(table)


def _update(namespace: str, **kwargs) -> ledger_store.Update:
    """One ledger update of the test's namespace, reading the DLQ topic of its own prefix
    (none exists unless a test creates it: then no unrecoverable range)."""
    return ledger_store.update(platform(), namespace, topic_prefix=f"{namespace}.", log=lambda _: None, **kwargs)


def test_late_backfill_updates_its_hour_and_the_hour_its_gap_was_counted_in(gold):
    cat = catalog(platform())
    gold_table_ = cat.load_table(f"{gold}.{contracts.GOLD_TABLE}")
    t1, t2, t3 = (datetime(2026, 3, 2, h, tzinfo=UTC) for h in (1, 2, 3))

    # 1. First run: all of Gold. 105..107 and 109 missing, both counted at 10:00
    #    (the hour of 108 and 110, the trades that revealed them).
    first = _update(gold, now=t1)
    assert first.full and first.since == H9 and first.rows == 4
    rows = _ledger(gold)
    assert len(rows) == 4
    assert _row(rows, "binance", "BTCUSDT", 0) == ("complete", 5, 0, 5, 0, [], "100", "104")
    assert _row(rows, "binance", "BTCUSDT", 1) == ("gaps", 2, 0, 6, 4, [(105, 107), (109, 109)], "108", "110")
    assert _row(rows, "binance", "BTCUSDT", 3) == ("complete", 1, 0, 1, 0, [], "111", "111")
    assert _row(rows, "kraken", "BTC/USD", 1) == ("complete", 2, 0, 2, 0, [], "55", "56")

    # 2. Backfill brings 105..107, which happened at 09:xx: 09:00 gains them, and 10:00
    #    (whose files did not change) now misses only 109.
    gold_table_.append(_trades([("BINANCE", "BTCUSDT", 0, tid, True) for tid in (105, 106, 107)]))
    second = _update(gold, now=t2)
    assert not second.full and second.since == H9 and second.gold_snapshot == gold_table_.current_snapshot().snapshot_id
    rows = _ledger(gold)
    assert _row(rows, "binance", "BTCUSDT", 0) == ("complete", 8, 3, 8, 0, [], "100", "107")
    assert _row(rows, "binance", "BTCUSDT", 1) == ("gaps", 2, 0, 3, 1, [(109, 109)], "108", "110")
    assert rows[("binance", "BTCUSDT", H9)]["computed_at"] == t2
    assert _bars_complete(gold) == {"09": ["true"], "10": ["false"], "12": ["true"]}

    # 3. 109 arrives (10:xx) and a new trade at 13:xx: only 10:00 onwards is recomputed.
    gold_table_.refresh().append(_trades([("BINANCE", "BTCUSDT", 1, 109, True), ("BINANCE", "BTCUSDT", 4, 112, False)]))
    third = _update(gold, now=t3)
    assert third.since == H9 + timedelta(hours=1)
    rows = _ledger(gold)
    assert len(rows) == 5
    assert _row(rows, "binance", "BTCUSDT", 1) == ("complete", 3, 1, 3, 0, [], "108", "110")
    assert _row(rows, "binance", "BTCUSDT", 4) == ("complete", 1, 0, 1, 0, [], "112", "112")
    assert rows[("binance", "BTCUSDT", H9)]["computed_at"] == t2  # 09:00 untouched
    assert rows[("kraken", "BTC/USD", H9 + timedelta(hours=1))]["computed_at"] == t3

    # 4. Nothing new in Gold: nothing recomputed; `k2 ledger update` says so; bars agree.
    assert _update(gold, now=t3).since is None
    out = subprocess.run([K2, "ledger", "update", "--namespace", gold, "--topic-prefix", f"{gold}."], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "completeness ledger: up to date with Gold snapshot" in out.stderr, out.stderr
    assert _bars_complete(gold) == {"09": ["true"], "10": ["true"], "12": ["true"], "13": ["true"]}


def _bars_complete(namespace: str) -> dict[str, list[str]]:
    """Hour -> the `complete` flag of each of its one-minute bars, from `k2 query bars`."""
    out = subprocess.run([K2, "query", "bars", "--exchange", "binance", "--symbol", "BTCUSDT", "--namespace",
                          namespace, "--start", "2026-03-01T09:00", "--end", "2026-03-01T14:00", "--format", "csv"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    hours: dict[str, list[str]] = {}
    for bar in csv.DictReader(io.StringIO(out.stdout)):
        hours.setdefault(bar["timestamp"][11:13], []).append(bar["complete"])
    return {hour: sorted(set(flags)) for hour, flags in hours.items()}


def test_upkeep_rewrites_crowded_months_and_expires_old_snapshots(gold, monkeypatch):
    for step in range(3):  # three commits to Gold, three updates: several files and snapshots
        if step:
            catalog(platform()).load_table(f"{gold}.{contracts.GOLD_TABLE}").append(
                _trades([("BINANCE", "BTCUSDT", 3, 111 + step, False)]))
        _update(gold)
    table = catalog(platform()).load_table(ledger_store.identifier(gold))
    before = sorted(map(str, table.scan().to_arrow().drop_columns(["computed_at"]).to_pylist()))
    assert len(table.inspect.files()) > 1 and len(table.snapshots()) > 1

    monkeypatch.setattr(ledger_store, "MAX_FILES_PER_MONTH", 1)
    monkeypatch.setattr(ledger_store, "KEEP_SNAPSHOTS", 1)
    lines: list[str] = []
    ledger_store.maintain(table, datetime.now(UTC) + timedelta(days=2), lines.append)

    table = catalog(platform()).load_table(ledger_store.identifier(gold))
    assert len(table.inspect.files()) == 1
    assert len(table.snapshots()) == 1
    assert sorted(map(str, table.scan().to_arrow().drop_columns(["computed_at"]).to_pylist())) == before
    assert any("rewritten" in line for line in lines) and any("expired" in line for line in lines), lines


def test_ranges_the_exchange_no_longer_serves_make_exactly_their_hours_unrecoverable(gold, stack):
    """The workers report such a range on the DLQ topic; the update copies it into
    ``completeness_unrecoverable`` and recomputes the hours it explains, though Gold did
    not change."""
    from confluent_kafka import Producer

    from k2.kafka_admin import TopicSpec, admin_client, delete_topics, ensure_topics
    from workers.dlq import lost_range

    topic = f"{gold}.{contracts.DLQ_TOPIC}"
    admin = admin_client(stack.kafka_bootstrap)
    ensure_topics(admin, [TopicSpec(topic, 1)])
    producer = Producer({"bootstrap.servers": stack.kafka_bootstrap})

    def report(first: int, last: int) -> None:
        producer.produce(topic, lost_range("binance", "BTCUSDT", first, last, "REST history no longer holds "
                                           "these trades", 1772355600_000000, "http://x/api/v3/historicalTrades"),
                         key=b"binance")
        producer.produce(topic, b'{"exchange":"binance","error_kind":"bad_json","raw":"{"}', key=b"binance")
        assert producer.flush(30) == 0

    try:
        assert _row(_with_update(gold), "binance", "BTCUSDT", 1)[:2] == ("gaps", 2)

        # 105..107 reported lost: 10:00 still misses 109, which a backfill may bring.
        report(105, 107)
        assert _row(_with_update(gold), "binance", "BTCUSDT", 1)[0] == "gaps"

        # 109 too: every id 10:00 misses is gone for good. Other hours do not change.
        report(109, 109)
        rows = _with_update(gold)
        assert _row(rows, "binance", "BTCUSDT", 1) == ("unrecoverable", 2, 0, 6, 4, [(105, 107), (109, 109)],
                                                       "108", "110")
        assert {k[2].hour - 9: r["status"] for k, r in rows.items() if k[1] == "BTCUSDT"} == {
            0: "complete", 1: "unrecoverable", 3: "complete"}
        lost = catalog(platform()).load_table(unrecoverable.identifier(gold)).scan().to_arrow().to_pylist()
        assert sorted((r["symbol"], r["first_id"], r["last_id"], r["dlq_offset"]) for r in lost) == [
            ("BTCUSDT", 105, 107, 0), ("BTCUSDT", 109, 109, 2)]

        # Read once: a further update copies nothing again and recomputes nothing.
        assert _update(gold).since is None
        assert len(catalog(platform()).load_table(unrecoverable.identifier(gold)).scan().to_arrow()) == 2
    finally:
        delete_topics(admin, [topic])


def test_possible_loss_windows_mark_their_hours_possibly_incomplete_trades_or_not(gold, stack):
    """A worker of a venue without gap detection reports when it was not listening; the
    update copies the window into ``completeness_possible_loss`` and marks the hours it
    overlaps, the hour in which Gold holds no trade of the symbol included."""
    from confluent_kafka import Producer

    from k2.kafka_admin import TopicSpec, admin_client, delete_topics, ensure_topics
    from workers.dlq import possible_loss_window

    cat = catalog(platform())
    cat.load_table(f"{gold}.{contracts.GOLD_TABLE}").append(
        _trades([("BYBIT", "BTCUSDT", 1, 9001, False), ("BYBIT", "BTCUSDT", 3, 9002, False)]))
    topic = f"{gold}.{contracts.DLQ_TOPIC}"
    admin = admin_client(stack.kafka_bootstrap)
    ensure_topics(admin, [TopicSpec(topic, 1)])
    producer = Producer({"bootstrap.servers": stack.kafka_bootstrap})
    h9_us = int(H9.timestamp()) * 1_000_000
    try:
        rows = _with_update(gold)
        assert rows[("bybit", "BTCUSDT", H9 + timedelta(hours=1))]["status"] == "not_applicable"
        assert ("bybit", "BTCUSDT", H9 + timedelta(hours=2)) not in rows

        # Not listening from 10:30 to 11:15: 10:00 and 11:00 may miss trades; 12:00 may not.
        producer.produce(topic, possible_loss_window("bybit", "BTCUSDT", h9_us + 5_400_000_000, h9_us + 8_100_000_000,
                                                     "connection_error", h9_us + 8_100_000_000, "ws://x"), key=b"bybit")
        assert producer.flush(30) == 0
        rows = _with_update(gold)
        marked = {k[2].hour: (r["status"], r["gold_trades"], r["possible_loss_seconds"],
                              [(w["from_ts"].strftime("%H:%M"), w["to_ts"].strftime("%H:%M"))
                               for w in r["possible_loss_windows"] or []])
                  for k, r in rows.items() if k[:2] == ("bybit", "BTCUSDT")}
        assert marked == {
            10: ("possibly_incomplete", 1, 1800.0, [("10:30", "11:15")]),
            11: ("possibly_incomplete", 0, 900.0, [("10:30", "11:15")]),
            12: ("not_applicable", 1, 0.0, []),
        }
        assert _row(rows, "binance", "BTCUSDT", 1)[0] == "gaps"  # other symbols unchanged
        kept = cat.load_table(loss_windows.identifier(gold)).scan().to_arrow().to_pylist()
        assert [(r["symbol"], r["reason"], r["dlq_offset"]) for r in kept] == [("BTCUSDT", "connection_error", 0)]

        # Read once: a further update copies nothing again and recomputes nothing.
        assert _update(gold).since is None
    finally:
        delete_topics(admin, [topic])


def test_a_ledger_table_of_an_earlier_release_gains_the_window_columns(gold):
    cat = catalog(platform())
    before = pa.schema([f for f in ledger_store.ARROW_SCHEMA if not f.name.startswith("possible_loss")])
    from pyiceberg.transforms import MonthTransform

    from k2.catalog import create_documented_table

    create_documented_table(cat, ledger_store.identifier(gold), before, "as released before", {},
                            partition=("hour", MonthTransform(), "hour_month"))
    _update(gold)
    table = cat.load_table(ledger_store.identifier(gold))
    assert table.schema().find_field("possible_loss_seconds").doc == ledger_store.DOC["possible_loss_seconds"]
    assert _row(_ledger(gold), "binance", "BTCUSDT", 1)[0] == "gaps"


def _with_update(namespace: str) -> dict[tuple, dict]:
    _update(namespace)
    return _ledger(namespace)
