"""Coverage of a symbol by connections, and the holes between them (workers.coverage).

Times are plain integers (µs) the tests choose: the clock is injected by construction.
"""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from workers.coverage import RESTART, Coverage


def holes(cov: Coverage) -> list[tuple[str, int, int, str]]:
    return [(h.symbol, h.from_us, h.to_us, h.reason) for h in cov.take_holes()]


def confirmed(cov: Coverage, link: int, at_us: int, symbols: tuple[str, ...] = ("X",)) -> None:
    """``link`` subscribed to ``symbols`` with one request, acknowledged at ``at_us``."""
    cov.subscribing(link, list(symbols), requests=1)
    cov.acked(link, at_us)


def test_first_subscription_is_no_hole_and_a_disconnect_is_one_per_symbol():
    cov = Coverage()
    cov.subscribing(1, ["BTCUSDT", "ETHUSDT"], requests=1)
    cov.acked(1, 100)
    cov.data(1, 150)
    cov.traded(1, "BTCUSDT", 150)
    cov.data(1, 200)
    assert holes(cov) == []
    assert cov.closed(1, "connection_error") == ["BTCUSDT", "ETHUSDT"]
    assert holes(cov) == []  # open until covered again: its end is not known yet
    assert cov.covered_until("BTCUSDT") == 200
    cov.subscribing(2, ["BTCUSDT", "ETHUSDT"], requests=1)
    cov.data(2, 260)  # a trade of another symbol does not confirm BTCUSDT...
    cov.traded(2, "ETHUSDT", 260)
    assert holes(cov) == [("ETHUSDT", 200, 260, "connection_error")]
    cov.acked(2, 270)  # ...the ack of the request does
    assert holes(cov) == [("BTCUSDT", 200, 270, "connection_error")]
    assert holes(cov) == []  # each hole is reported once


def test_every_request_must_be_acked_before_the_link_confirms_its_symbols():
    cov = Coverage({"BTCUSDT": 50})
    cov.subscribing(1, ["BTCUSDT"], requests=2)
    cov.acked(1, 100)
    assert holes(cov) == []
    cov.acked(1, 120)
    assert holes(cov) == [("BTCUSDT", 50, 120, RESTART)]


def test_a_refused_subscription_leaves_the_window_open():
    cov = Coverage({"BTCUSDT": 50})
    cov.subscribing(1, ["BTCUSDT"], requests=1)
    cov.data(1, 100)  # trades of nothing we asked for, no ack: not covered
    assert holes(cov) == [] and not cov.is_covered("BTCUSDT")
    assert cov.covered_until("BTCUSDT") == 50  # what a restart would start from


def test_stall_the_window_starts_at_the_last_data_not_at_the_watchdog():
    cov = Coverage()
    confirmed(cov, 1, 0, ("BTCUSDT",))
    cov.data(1, 1_000)  # then nothing: the watchdog closes it 60 s later
    cov.closed(1, "stall")
    confirmed(cov, 2, 61_500, ("BTCUSDT",))
    assert holes(cov) == [("BTCUSDT", 1_000, 61_500, "stall")]


def test_rotation_with_overlap_reports_nothing():
    cov = Coverage()
    confirmed(cov, 1, 0, ("BTCUSDT",))
    cov.data(1, 100)
    cov.subscribing(2, ["BTCUSDT"], requests=1)  # the successor, while the old one still reads
    cov.acked(2, 110)
    cov.data(1, 130)
    cov.data(2, 140)
    cov.closed(1, "rotated")
    cov.data(2, 200)
    cov.closed(2, "rotated")
    confirmed(cov, 3, 190, ("BTCUSDT",))  # confirmed before the old one's last data: still overlapping
    cov.data(3, 250)
    assert holes(cov) == []


def test_a_successor_confirmed_after_the_old_one_went_quiet_is_a_hole_only_once_the_old_one_dies():
    cov = Coverage()
    confirmed(cov, 1, 0, ("BTCUSDT",))
    cov.data(1, 100)
    confirmed(cov, 2, 300, ("BTCUSDT",))
    cov.data(2, 320)
    assert holes(cov) == []  # link 1 may still deliver what it owes (TCP is in order)
    cov.data(1, 400)
    cov.closed(1, "rotated")
    assert holes(cov) == []  # it did: covered throughout
    confirmed(cov, 3, 500, ("BTCUSDT",))
    cov.data(2, 450)
    cov.closed(2, "connection_error")  # last data 450, the next confirmed at 500
    assert holes(cov) == [("BTCUSDT", 450, 500, "connection_error")]


def test_a_short_lived_link_between_two_holes_splits_them():
    cov = Coverage()
    confirmed(cov, 1, 0)
    cov.data(1, 10)
    confirmed(cov, 2, 20)
    cov.data(2, 30)
    cov.closed(2, "connection_error")  # covered 20..30 while link 1 was quiet
    cov.closed(1, "stall")
    confirmed(cov, 3, 50)
    assert holes(cov) == [("X", 10, 20, "stall"), ("X", 30, 50, "connection_error")]


def test_restart_starts_from_the_saved_time_and_a_clock_step_back_yields_no_negative_window():
    cov = Coverage({"X": 1_000})
    confirmed(cov, 1, 900)  # the clock went back (NTP step): no negative window, nothing lost to report
    assert holes(cov) == []
    cov.data(1, 950)
    assert cov.covered_until("X") == 1_000  # the frontier never moves back
    cov.closed(1, "connection_error")
    confirmed(cov, 2, 1_200)
    # By its clock link 1 covered only times before the saved frontier: the hole is still
    # the one that began before the restart, and it ends at the next confirmation.
    assert holes(cov) == [("X", 1_000, 1_200, RESTART)]


def test_a_symbol_listed_later_waits_for_its_own_request_and_an_unsubscribe_ack_confirms_nothing():
    cov = Coverage({"Y": 40})  # Y was covered by an earlier process until 40
    confirmed(cov, 1, 0)
    cov.unsubscribing(1, ["X"], requests=1)  # X delisted: one unsubscribe request ...
    cov.subscribing(1, ["Y"], requests=1)  # ... then Y listed: one subscribe request
    cov.acked(1, 50)  # the unsubscribe's answer
    assert holes(cov) == [] and not cov.is_covered("Y")
    cov.acked(1, 60)  # the subscribe's
    assert holes(cov) == [("Y", 40, 60, RESTART)]


def test_a_delisted_symbol_is_forgotten_no_window_is_owed_for_it():
    cov = Coverage({"X": 5})
    confirmed(cov, 1, 10)
    assert holes(cov) == [("X", 5, 10, RESTART)]
    cov.data(1, 20)
    cov.unsubscribing(1, ["X"], requests=0)  # its shard closes with its last symbol
    assert cov.closed(1, "delisted") == [] and holes(cov) == []
    assert cov.covered_until("X") is None and cov.symbols() == []


def test_events_of_unknown_links_are_ignored():
    cov = Coverage()
    cov.data(7, 10)
    cov.acked(7, 10)
    cov.traded(7, "X", 10)
    assert cov.closed(7, "stall") == [] and holes(cov) == []


# -- properties over event sequences --------------------------------------------------

SYMBOLS = ("A", "B")
EVENTS = st.lists(st.tuples(
    st.sampled_from(["open", "ack", "trade", "data", "close"]),
    st.integers(0, 3),  # which link (an index among those opened so far)
    st.sampled_from(SYMBOLS),
    st.integers(0, 15),  # time step
), max_size=60)


def run(events, saved: dict[str, int] | None, start: int = 100):
    """Drive a Coverage with ``events``; returns the holes and the true spans per symbol
    (computed here from the same events, the simple way: per link and symbol, from the
    confirmation to the last data)."""
    cov = Coverage(saved)
    now = start
    opened: list[int] = []
    live: dict[int, dict] = {}
    spans: dict[str, list[tuple[int, int]]] = {s: [] for s in SYMBOLS}
    reported = []

    def finish(link: int) -> None:
        state = live.pop(link)
        for symbol, start_at in state["confirmed"].items():
            spans[symbol].append((start_at, max(start_at, state["last"])))

    for kind, index, symbol, step in events:
        now += step
        if kind == "open" or not opened:
            link = len(opened) + 1
            opened.append(link)
            live[link] = {"acks": 1, "confirmed": {}, "last": 0}
            cov.subscribing(link, list(SYMBOLS), requests=1)
            continue
        link = opened[index % len(opened)]
        state = live.get(link)
        if kind == "ack":
            cov.acked(link, now)
            if state is not None:
                state["acks"] -= 1
                if state["acks"] == 0:
                    for s in SYMBOLS:
                        state["confirmed"].setdefault(s, now)
        elif kind == "trade":
            cov.data(link, now)
            cov.traded(link, symbol, now)
            if state is not None:
                state["confirmed"].setdefault(symbol, now)
                state["last"] = now
        elif kind == "data":
            cov.data(link, now)
            if state is not None:
                state["last"] = now
        elif kind == "close":
            cov.closed(link, "connection_error")
            if state is not None:
                finish(link)
        reported += cov.take_holes()
    for link in list(live):
        cov.closed(link, "shutdown")
        finish(link)
    reported += cov.take_holes()
    return reported, spans


def check(reported, spans, saved: dict[str, int]) -> None:
    for symbol in SYMBOLS:
        mine = sorted((h.from_us, h.to_us) for h in reported if h.symbol == symbol)
        assert all(a < b for a, b in mine), mine
        assert all(b1 <= a2 for (_, b1), (a2, _) in pairwise(mine)), f"overlapping windows {mine}"
        if not spans[symbol]:
            assert mine == []
            continue

        def covered(t: int, s=symbol) -> bool:
            return any(a <= t <= b for a, b in spans[s])

        def in_window(t: int, m=mine) -> bool:
            return any(a < t < b for a, b in m)

        first = saved.get(symbol, min(a for a, _ in spans[symbol]))
        last = max(b for _, b in spans[symbol])
        for t in range(first, last + 1):
            if covered(t):
                assert not in_window(t), f"{symbol}: window over streamed time {t}: {mine} spans {spans[symbol]}"
            elif t > first:
                assert in_window(t), f"{symbol}: time {t} not covered and in no window: {mine} {spans[symbol]}"


@given(EVENTS)
def test_windows_never_overlap_cover_every_interruption_and_never_a_streamed_time(events):
    reported, spans = run(events, None)
    check(reported, spans, {})


@given(EVENTS, st.integers(0, 99))
def test_after_a_restart_the_first_window_starts_at_the_saved_time(events, saved_at):
    saved = {"A": saved_at}
    reported, spans = run(events, saved)
    check(reported, spans, saved)
    if spans["A"]:
        first = min(h.from_us for h in reported if h.symbol == "A")
        assert first == saved_at and any(h.reason == RESTART for h in reported if h.symbol == "A")
