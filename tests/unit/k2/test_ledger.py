"""The completeness ledger's arithmetic, against trades whose missing ids the test chose."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from k2 import ledger
from k2.ledger import HeldTrade

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _trade(tid: int | str, hour: int, backfill: bool = False, exchange: str = "binance",
           symbol: str = "BTCUSDT") -> HeldTrade:
    return HeldTrade(exchange, symbol, T0 + timedelta(hours=hour), str(tid), backfill)


def _contiguous(name: str) -> bool:
    return name in {"binance", "kraken"}


@st.composite
def market(draw):
    """A symbol's ids start..start+n-1 over nondecreasing hours, some dropped by the test."""
    start = draw(st.integers(0, 10**12))
    n = draw(st.integers(1, 120))
    steps = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    hours, h = [], 0
    for step in steps:
        h += step and draw(st.integers(1, 3))
        hours.append(h)
    dropped = draw(st.sets(st.integers(0, n - 1), max_size=n - 1))
    held = [i for i in range(n) if i not in dropped]
    if not held:
        held, dropped = [0], dropped - {0}
    backfilled = draw(st.sets(st.sampled_from(held)))
    return start, hours, held, sorted(dropped), backfilled, draw(st.booleans())


@settings(max_examples=300, derandomize=True, deadline=None)
@given(market())
def test_missing_ids_are_exactly_the_dropped_ones_a_later_trade_reveals(case):
    start, hours, held, dropped, backfilled, knows_before = case
    trades = [_trade(start + i, hours[i], i in backfilled) for i in held]
    before = {("binance", "BTCUSDT"): start - 1} if knows_before else {}
    rows = ledger.hour_ledgers(trades, _contiguous, held_before=before)

    # Revealed: below the newest held id, and above the id known before (or the first held).
    floor = -1 if knows_before else held[0]
    revealed = {start + i for i in dropped if floor < i < held[-1]}
    reported = {tid for row in rows for first, last in row.missing_ranges for tid in range(first, last + 1)}
    assert reported == revealed
    assert sum(row.missing_ids for row in rows) == len(revealed)

    held_by_hour: dict[datetime, list[int]] = {}
    for i in held:
        held_by_hour.setdefault(T0 + timedelta(hours=hours[i]), []).append(start + i)
    assert [row.hour for row in rows] == sorted(held_by_hour)
    for row in rows:
        ids = held_by_hour[row.hour]
        assert (row.first_trade_id, row.last_trade_id) == (str(min(ids)), str(max(ids)))
        assert row.gold_trades == len(ids) and row.expected_trades == len(ids) + row.missing_ids
        assert row.backfill_trades == sum(1 for tid in ids if tid - start in backfilled)
        assert row.live_trades == row.gold_trades - row.backfill_trades
        for _first, last in row.missing_ranges:  # each gap belongs to the hour of the trade after it
            assert last + 1 in ids
        assert row.status == (ledger.COMPLETE if not row.missing_ranges else ledger.GAPS)


def test_a_gap_across_an_hour_boundary_belongs_to_the_later_hour():
    rows = ledger.hour_ledgers([_trade(10, 0), _trade(11, 0), _trade(15, 1), _trade(16, 1)], _contiguous)
    assert [(r.hour.hour, r.missing_ranges, r.status) for r in rows] == [
        (0, (), ledger.COMPLETE), (1, ((12, 14),), ledger.GAPS)]


def test_ranges_the_exchange_no_longer_serves_are_unrecoverable_and_nothing_else():
    trades = [_trade(1, 0), _trade(5, 0), _trade(9, 1), _trade(20, 2)]
    lost = {("binance", "BTCUSDT"): [(2, 3), (4, 4), (6, 8)]}
    rows = ledger.hour_ledgers(trades, _contiguous, unrecoverable=lost)
    assert [(r.missing_ranges, r.status) for r in rows] == [
        (((2, 4),), ledger.UNRECOVERABLE),  # 2..4 covered by two adjacent lost ranges
        (((6, 8),), ledger.UNRECOVERABLE),
        (((10, 19),), ledger.GAPS),  # a backfill may still bring these
    ]
    partly = ledger.hour_ledgers([_trade(1, 0), _trade(10, 0)], _contiguous,
                                 unrecoverable={("binance", "BTCUSDT"): [(2, 5)]})
    assert partly[0].status == ledger.GAPS  # 6..9 may still come


def test_a_trade_read_twice_is_counted_once():
    rows = ledger.hour_ledgers([_trade(1, 0), _trade(2, 0), _trade(2, 0, backfill=True)], _contiguous)
    assert (rows[0].gold_trades, rows[0].live_trades, rows[0].backfill_trades) == (2, 2, 0)


def test_a_venue_without_contiguous_ids_has_counts_and_no_arithmetic():
    trades = [_trade("b7", 0, exchange="other", symbol="X"), _trade("a1", 0, True, exchange="other", symbol="X")]
    (row,) = ledger.hour_ledgers(trades, _contiguous)
    assert row.status == ledger.NOT_APPLICABLE
    assert (row.gold_trades, row.backfill_trades, row.expected_trades, row.missing_ids) == (2, 1, None, None)
    assert (row.first_trade_id, row.last_trade_id) == ("a1", "b7")


def test_symbols_and_exchanges_never_mix():
    rows = ledger.hour_ledgers([_trade(1, 0), _trade(5, 0, symbol="ETHUSDT"), _trade(3, 0, exchange="kraken")],
                               _contiguous)
    assert [(r.exchange, r.symbol, r.missing_ids) for r in rows] == [
        ("binance", "BTCUSDT", 0), ("binance", "ETHUSDT", 0), ("kraken", "BTCUSDT", 0)]


def test_the_source_is_read_from_vendor_data():
    assert ledger.is_backfilled({"source": "rest", "buyer_is_maker": "true"})
    assert not ledger.is_backfilled({"buyer_is_maker": "true"}) and not ledger.is_backfilled(None)


def test_summary_counts_quiet_hours_as_complete_and_names_the_range():
    from k2ops import completeness

    start = T0
    rows = ledger.hour_ledgers([_trade(1, 0), _trade(4, 2), _trade(5, 2)], _contiguous)
    summary = completeness.summarize(rows, start, start + timedelta(hours=3, minutes=20))
    assert (summary.hours, summary.complete, summary.without_trades, summary.with_gaps) == (4, 3, 2, 1)
    assert summary.line("binance", "BTCUSDT", start, start + timedelta(hours=4)).endswith(
        "3/4 hours complete (2 without trades), 2 missing ids in 1 ranges")
    table = completeness.as_arrow(rows)
    assert table.column("missing_ranges").to_pylist() == ["", "2-3"]


def test_all_covered_needs_every_gap_inside_the_lost_ranges():
    lost = [(10, 12), (13, 20), (30, 30)]
    assert ledger.all_covered([(10, 20), (30, 30)], lost)
    assert not ledger.all_covered([(10, 21)], lost)
    assert not ledger.all_covered([(10, 12), (31, 31)], lost)
    assert not ledger.all_covered([], lost)  # nothing missing is "complete", not "unrecoverable"
