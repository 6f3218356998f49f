"""Possible-loss windows in the completeness ledger: reading the workers' DLQ records
(k2/loss_windows.py) and the hours they mark (k2.ledger.with_windows)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from k2 import ledger, loss_windows, unrecoverable
from k2.ledger import HeldTrade
from workers.dlq import lost_range, possible_loss_window

T0 = datetime(2026, 12, 1, tzinfo=UTC)
US = 1_000_000
T0_US = 1_796_083_200 * US  # T0 in µs, written out


def _at(hours: float) -> int:
    return T0_US + int(hours * 3600 * US)


def test_a_worker_record_becomes_one_row():
    value = possible_loss_window("bybit", "BTCUSDT", _at(0.5), _at(0.75), "connection_error", _at(0.74),
                                 "ws://127.0.0.1:1/v5/public/spot")
    assert loss_windows.parse(0, 12, value) == {
        "exchange": "bybit", "symbol": "BTCUSDT", "from_ts": T0 + timedelta(minutes=30),
        "to_ts": T0 + timedelta(minutes=45), "reason": "connection_error",
        "reported_at": T0 + timedelta(minutes=44, seconds=24), "endpoint": "ws://127.0.0.1:1/v5/public/spot",
        "dlq_partition": 0, "dlq_offset": 12}


def test_other_dead_letters_and_broken_windows_are_not_rows():
    assert loss_windows.parse(0, 0, lost_range("binance", "X", 1, 2, "r", 0, "e")) is None
    assert loss_windows.parse(0, 0, b'{"exchange":"bybit","error_kind":"malformed_json","raw":"{"}') is None
    backwards = json.loads(possible_loss_window("bybit", "X", 9, 7, "stall", 0, "e"))
    assert loss_windows.parse(0, 0, json.dumps(backwards).encode()) is None
    assert loss_windows.parse(0, 0, None) is None and loss_windows.parse(0, 0, b"\xff") is None
    # and the other reader of the DLQ topic leaves windows alone
    assert unrecoverable.parse(0, 0, possible_loss_window("bybit", "X", 7, 9, "stall", 0, "e")) is None


@given(st.binary(max_size=300) | st.builds(lambda d: json.dumps(d).encode(), st.dictionaries(
    st.sampled_from(["exchange", "error_kind", "possible_loss", "received_at_us"]),
    st.one_of(st.none(), st.integers(), st.text(max_size=5), st.just("possible_loss_window"),
              st.dictionaries(st.sampled_from(["symbol", "from_us", "to_us"]), st.integers() | st.text(max_size=3))))))
def test_any_value_on_the_dlq_topic_is_a_row_or_none_never_an_error(value):
    row = loss_windows.parse(0, 0, value)
    assert row is None or row["from_ts"] <= row["to_ts"]


def _hours(rows: list[ledger.HourLedger]) -> dict[tuple[str, int], tuple]:
    return {(r.exchange, int((r.hour - T0).total_seconds() // 3600)):
            (r.status, r.gold_trades, r.possible_loss_seconds, len(r.possible_loss)) for r in rows}


def test_window_hours_are_possibly_incomplete_with_the_seconds_they_cover_trades_or_not():
    trades = [HeldTrade("bybit", "BTCUSDT", T0 + timedelta(hours=h), str(i), False) for i, h in enumerate((0, 0, 3))]
    trades.append(HeldTrade("binance", "BTCUSDT", T0, "7", False))
    rows = ledger.hour_ledgers(trades, lambda ex: ex == "binance")
    windows = {("bybit", "BTCUSDT"): [(_at(0.5), _at(2.25))], ("binance", "BTCUSDT"): [(_at(5), _at(5.5))]}
    marked = ledger.with_windows(rows, windows, T0, T0 + timedelta(hours=5))
    assert _hours(marked) == {
        ("binance", 0): ("complete", 1, 0.0, 0),  # its window lies outside [start, end)
        ("bybit", 0): ("possibly_incomplete", 2, 1800.0, 1),
        ("bybit", 1): ("possibly_incomplete", 0, 3600.0, 1),  # no trade at all in it: a row all the same
        ("bybit", 2): ("possibly_incomplete", 0, 900.0, 1),
        ("bybit", 3): ("not_applicable", 1, 0.0, 0),
    }
    assert [(r.exchange, r.hour.hour) for r in marked] == [("binance", 0), ("bybit", 0), ("bybit", 1), ("bybit", 2),
                                                            ("bybit", 3)]
    assert marked[1].possible_loss == ((_at(0.5), _at(2.25)),) and marked[2].first_trade_id == ""


def test_gaps_and_unrecoverable_say_more_and_stay():
    trades = [HeldTrade("binance", "BTCUSDT", T0, tid, False) for tid in ("1", "5")]
    rows = ledger.hour_ledgers(trades, lambda ex: True)
    (marked,) = ledger.with_windows(rows, {("binance", "BTCUSDT"): [(_at(0.1), _at(0.2))]}, T0, T0 + timedelta(hours=1))
    assert (marked.status, marked.missing_ids, marked.possible_loss_seconds) == ("gaps", 3, 360.0)


def test_overlapping_windows_count_their_union_once():
    rows = ledger.with_windows([], {("bybit", "X"): [(_at(0.25), _at(0.5)), (_at(0.4), _at(0.6)), (_at(0.9), _at(3))]},
                               T0, T0 + timedelta(hours=1))
    assert [(r.status, r.possible_loss_seconds, len(r.possible_loss)) for r in rows] == [
        ("possibly_incomplete", 0.35 * 3600 + 0.1 * 3600, 3)]


def test_k2_completeness_counts_and_shows_possibly_incomplete_hours():
    from k2ops import completeness

    rows = ledger.hour_ledgers([HeldTrade("bybit", "X", T0, "1", False)], lambda ex: False)
    rows = ledger.with_windows(rows, {("bybit", "X"): [(_at(0.5), _at(1.5))]}, T0, T0 + timedelta(hours=3))
    summary = completeness.summarize(rows, T0, T0 + timedelta(hours=3))
    assert (summary.hours, summary.complete, summary.without_trades, summary.possibly_incomplete) == (3, 1, 2, 2)
    assert summary.line("bybit", "X", T0, T0 + timedelta(hours=3)).endswith(
        "1/3 hours complete (2 without trades), 0 missing ids in 0 ranges, 2 hours possibly incomplete "
        "(possible-loss windows)")
    table = completeness.as_arrow(rows)
    assert table.column("possible_loss_windows").to_pylist() == [
        "2026-12-01T00:30:00Z/2026-12-01T01:30:00Z"] * 2
    assert table.column("possible_loss_seconds").to_pylist() == [1800.0, 1800.0]


def test_reconciliation_lists_the_windows_overlapping_its_range_without_counting_them_missing():
    from k2.reconcile import PartitionReport, Report

    window = {"exchange": "bybit", "symbol": "BTCUSDT", "from_ts": T0 + timedelta(minutes=30),
              "to_ts": T0 + timedelta(minutes=30, seconds=2), "reason": "stall"}
    report = Report(T0, T0 + timedelta(hours=1), [PartitionReport("t", 0, 0, 10, bronze=10, silver=10, gold=10)],
                    possible_loss=[window])
    assert report.missing == 0
    assert report.lines()[-1] == (
        "POSSIBLY INCOMPLETE: 1 possible-loss window(s) of 1 symbol(s) overlap this range (the worker was not "
        "listening; trades then may never have reached Kafka), e.g. bybit BTCUSDT 00:30:00.000000..00:30:02.000000 "
        "(stall)")
