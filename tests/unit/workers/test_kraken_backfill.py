"""Kraken gap backfill over REST Trades: parsing, the since/last cursor, stepping back,
history no longer served, the rate limit (in the body and as HTTP 429), pacing."""

from __future__ import annotations

import json
import time
import urllib.parse
from decimal import Decimal

import pytest

from workers.backfill import Done, Failed, Pacer, Page, Unavailable, fetch_gap
from workers.exchanges.kraken import Kraken
from workers.exchanges.kraken_rest import (
    MIN_INTERVAL_S,
    RATE_LIMITED_WAIT_S,
    parse_trades,
    rest_pair,
)
from workers.normalize import NormalizeError
from workers.progress import Gap
from workers.simulator.market import Tape
from workers.simulator.venues import kraken as sim_kraken
from workers.simulator.venues.kraken import kraken_pair_symbols, kraken_trades_reply
from workers.stats import WorkerStats
from workers.symbols import SymbolTable

# The shape of Kraken's documented answer to GET /0/public/Trades?pair=XBTUSD&since=...
RECORDED = (
    b'{"error":[],"result":{"XXBTZUSD":['
    b'["94250.10000","0.01250000",1767225600.123456,"s","m","",81234567],'
    b'["94250.20000","0.50000000",1767225600.2,"b","l","",81234568]],'
    b'"last":"1767225600200000000"}}'
)
RECEIVED = 1767225600300000
PAIRS = kraken_pair_symbols(["BTC/USD", "ETH/USD"], {"XBT": "BTC", "XDG": "DOGE"})


@pytest.fixture
def kraken() -> Kraken:
    return Kraken(["BTC/USD", "ETH/USD"], SymbolTable.shipped())


def test_recorded_answer_becomes_records_identical_to_the_streams(kraken):
    page, last = parse_trades(RECORDED, kraken.pair("BTC/USD"), RECEIVED)
    assert (page.ids, last, page.rejects) == ([81234567, 81234568], 1767225600200000000, [])
    # The same trade as the v2 stream sends it (docs/exchanges.md's example).
    live = kraken.parse(b'{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"sell",'
                        b'"price":94250.1,"qty":0.0125,"ord_type":"market","trade_id":81234567,'
                        b'"timestamp":"2026-01-01T00:00:00.123456Z"}]}', RECEIVED).trades[0]
    rest = page.records[0]
    assert {k: v for k, v in rest.items() if k != "vendor_data"} == {k: v for k, v in live.items() if k != "vendor_data"}
    assert rest["vendor_data"] == {"ord_type": "market", "source": "rest"}
    assert (page.records[1]["side"], page.records[1]["timestamp"], page.records[1]["price"]) == (
        "BUY", 1767225600200000, Decimal("94250.2"))


def test_rest_pair_is_krakens_altname():
    assert (rest_pair("BTC/USD", {"XBT": "BTC"}), rest_pair("ETH/EUR", {"XBT": "BTC"})) == ("XBTUSD", "ETHEUR")


def test_bad_items_are_rejected_good_ones_kept(kraken):
    body = (b'{"error":[],"result":{"XXBTZUSD":[["1.0","2.0",1767225600.5,"b","m","",7],'
            b'["1.0","2.0",1767225600.5,"x","m","",8],["1.0","2.0",1767225600.5,"s","m",""],'
            b'[1.0,"2.0",1767225600.5,"s","m","",10],"nope"],"last":"1767225600500000000"}}')
    page, _ = parse_trades(body, kraken.pair("BTC/USD"), RECEIVED)
    assert [r["trade_id"] for r in page.records] == ["7"]
    assert page.ids == [7, 8, 10]  # ids of rejected items still move paging on
    assert [e.kind for e, _ in page.rejects] == ["bad_trade"] * 4
    assert all(json.loads(raw) is not None for _, raw in page.rejects)


@pytest.mark.parametrize(("body", "kind"), [
    (b'{"error":["EAPI:Rate limit exceeded"]}', "rest_error"),
    (b'{"error":["EGeneral:Invalid arguments"],"result":{}}', "rest_error"),
    (b"[]", "bad_rest_response"),
    (b"<html>", "bad_rest_response"),
    (b'{"error":[],"result":{"last":"1"}}', "bad_rest_response"),
    (b'{"error":[],"result":{"A":[],"B":[],"last":"1"}}', "bad_rest_response"),
    (b'{"error":[],"result":{"A":[],"last":"x"}}', "bad_rest_response"),
])
def test_answers_that_are_not_trades_raise_a_typed_error(kraken, body, kind):
    with pytest.raises(NormalizeError) as err:
        parse_trades(body, kraken.pair("BTC/USD"), RECEIVED)
    assert err.value.kind == kind


# paging against the simulator's Trades handler -------------------------------------


def live_tape(depth: int = 10_000, trades: int = 3000, span_s: float = 120.0) -> Tape:
    """A tape whose trades happened over the last ``span_s`` seconds (the cursor is a time)."""
    t = Tape(["BTC/USD", "ETH/USD"], {"BTC/USD": "BTC", "ETH/USD": "ETH"}, 3, 1, archive_depth=depth)
    start = time.time_ns() // 1000 - int(span_s * 1e6)
    for i in range(trades):
        t.next(start + int(i * span_s * 1e6 / trades))
    return t


class Rest:
    """A fake fetch answering from the simulator's handler, with scripted faults first."""

    def __init__(self, tape: Tape, faults: list[tuple[int, dict, bytes]] | None = None):
        self.tape, self.faults, self.queries = tape, list(faults or []), []

    def __call__(self, url: str, headers: dict, timeout_s: float):
        parts = urllib.parse.urlsplit(url)
        query = urllib.parse.parse_qs(parts.query)
        self.queries.append(query)
        if self.faults:
            return self.faults.pop(0)
        reply = kraken_trades_reply(parts.path, query, self.tape, PAIRS)
        return reply.status, reply.headers, reply.body.encode()


def run(kraken: Kraken, gap: Gap, rest: Rest, page_limit: int = 1000, pacer: Pacer | None = None):
    sleeps: list[float] = []
    events = list(fetch_gap(gap, kraken, "http://rest.test/", page_limit, rest,
                            lambda s: sleeps.append(s) or True, WorkerStats("kraken"), pacer))
    return events, sleeps


def ids_of(events) -> list[int]:
    return [int(r["trade_id"]) for e in events if isinstance(e, Page) for r in e.page.records]


def test_a_gap_older_than_the_first_window_is_found_by_stepping_back_and_paged(kraken):
    tape = live_tape()
    archive = list(tape.archive["BTC/USD"])
    first, last = archive[100].trade_id, archive[-200].trade_id  # starts ~115 s ago: 2 steps back
    rest = Rest(tape)
    events, _ = run(kraken, Gap(1, "BTC/USD", first, last, "restart"), rest, page_limit=100)
    assert ids_of(events) == list(range(first, last + 1))  # each once, in order
    assert isinstance(events[-1], Done) and not any(isinstance(e, Unavailable) for e in events)
    assert all(q["pair"] == ["XBTUSD"] and q["count"] == ["100"] for q in rest.queries)
    sinces = [int(q["since"][0]) for q in rest.queries]
    assert sinces[1] < sinces[0] and sinces[2] < sinces[1]  # stepped back twice ...
    assert sinces[2:] == sorted(sinces[2:])  # ... then paged forward


def test_history_no_longer_served_is_reported_unavailable_and_the_rest_filled(kraken):
    tape = live_tape(depth=500)
    oldest = tape.archive["ETH/USD"][0].trade_id
    gap = Gap(2, "ETH/USD", oldest - 40, oldest + 9, "restart")
    events, _ = run(kraken, gap, Rest(tape))
    (unavailable,) = [e for e in events if isinstance(e, Unavailable)]
    assert (unavailable.first, unavailable.last) == (oldest - 40, oldest - 1)
    assert ids_of(events) == list(range(oldest, oldest + 10))
    assert isinstance(events[-1], Done)


def test_history_cut_from_below_while_stepping_back_keeps_what_was_listed(kraken):
    """The market runs on during the backfill and REST keeps only its last 100 trades:
    each step back answers a newer first trade. Every trade of the gap that any answer
    listed is produced, the rest is reported unavailable, and the stepping stops."""
    tape = live_tape(depth=100, trades=300, span_s=10)
    oldest = tape.archive["ETH/USD"][0].trade_id
    gap = Gap(4, "ETH/USD", oldest - 60, oldest + 150, "restart")

    served: set[int] = set()  # every id any answer listed: the ground truth of what was recoverable

    class Moving(Rest):
        def __call__(self, url, headers, timeout_s):
            parts = urllib.parse.urlsplit(url)
            query = urllib.parse.parse_qs(parts.query)
            self.queries.append(query)
            reply = kraken_trades_reply(parts.path, query, tape, PAIRS)
            served.update(t.trade_id for t in reply.trades)
            for _ in range(30):  # the next request sees 15 more ETH/USD trades (two symbols alternate)
                tape.next(time.time_ns() // 1000)
            return reply.status, reply.headers, reply.body.encode()

    rest = Moving(tape)
    events, _ = run(kraken, gap, rest)
    produced = ids_of(events)
    lost = {i for e in events if isinstance(e, Unavailable) for i in range(e.first, e.last + 1)}
    in_gap = set(range(gap.first, gap.last + 1))
    assert sorted(produced) == sorted(served & in_gap) and len(produced) == len(set(produced))  # each once
    assert lost == in_gap - served and lost
    assert min(produced) == oldest  # the first answer's trades were kept, though it was not placed yet
    assert len(rest.queries) <= 4 and isinstance(events[-1], Done)


def test_rate_limit_in_the_body_and_429_wait_then_succeed(kraken):
    tape = live_tape(trades=200, span_s=10)
    archive = list(tape.archive["BTC/USD"])
    gap = Gap(3, "BTC/USD", archive[5].trade_id, archive[9].trade_id, "stream")
    limited = (200, {}, b'{"error":["EAPI:Rate limit exceeded"]}')
    rest = Rest(tape, [limited, (429, {"Retry-After": "7"}, b""), limited])
    events, sleeps = run(kraken, gap, rest)
    assert ids_of(events) == [a.trade_id for a in archive[5:10]]
    done = events[-1]
    assert isinstance(done, Done) and done.throttled == 3
    assert [s for s in sleeps if s > MIN_INTERVAL_S] == [RATE_LIMITED_WAIT_S, 7.0, RATE_LIMITED_WAIT_S]


def test_requests_are_paced_to_one_a_second(kraken):
    tape = live_tape(trades=200, span_s=10)
    archive = list(tape.archive["BTC/USD"])
    rest = Rest(tape)
    events, sleeps = run(kraken, Gap(4, "BTC/USD", archive[0].trade_id, archive[-1].trade_id, "stream"), rest,
                         page_limit=10)
    assert len(rest.queries) >= 10 and isinstance(events[-1], Done)
    # Every request after the first waited (the fake fetch answers at once) up to 1 s.
    assert len(sleeps) == len(rest.queries) - 1 and all(0.9 < s <= MIN_INTERVAL_S for s in sleeps)


def test_the_pace_holds_from_one_gap_to_the_next(kraken):
    tape = live_tape(trades=200, span_s=10)
    archive = list(tape.archive["BTC/USD"])
    pacer, rest = Pacer(), Rest(tape)
    first, _ = run(kraken, Gap(8, "BTC/USD", archive[0].trade_id, archive[0].trade_id, "stream"), rest, pacer=pacer)
    second, sleeps = run(kraken, Gap(9, "BTC/USD", archive[1].trade_id, archive[1].trade_id, "stream"), rest,
                         pacer=pacer)
    assert isinstance(first[-1], Done) and isinstance(second[-1], Done)
    assert len(sleeps) == 1 and 0.9 < sleeps[0] <= MIN_INTERVAL_S  # the second gap's first request waited


def test_other_errors_fail_the_gap_after_retries(kraken):
    bad = (200, {}, b'{"error":["EGeneral:Invalid arguments"]}')
    events, _ = run(kraken, Gap(5, "BTC/USD", 10, 20, "stream"), Rest(live_tape(trades=10), [bad] * 10))
    (failed,) = events
    assert isinstance(failed, Failed) and "EGeneral:Invalid arguments" in failed.reason and failed.next_id == 10


def test_a_cursor_that_does_not_move_fails_instead_of_paging_forever(kraken):
    stuck = (200, {}, RECORDED)  # always the same two trades, ids below the gap, same last
    events, _ = run(kraken, Gap(6, "BTC/USD", 81234570, 81234580, "stream"), Rest(live_tape(trades=10), [stuck] * 50))
    assert isinstance(events[-1], Failed) and "does not pass since" in events[-1].reason


def test_live_and_backfilled_copies_of_a_simulated_trade_are_the_same_record(kraken):
    tape = live_tape(trades=50, span_s=5)
    trade = tape.archive["BTC/USD"][10]
    live = kraken.parse(sim_kraken.kraken_trades([sim_kraken.kraken_item(trade, exponent_qty=True)]), RECEIVED).trades[0]
    events, _ = run(kraken, Gap(7, "BTC/USD", trade.trade_id, trade.trade_id, "stream"), Rest(tape))
    (rest,) = [r for e in events if isinstance(e, Page) for r in e.page.records]
    strip = ("vendor_data", "ingestion_timestamp")
    assert {k: v for k, v in rest.items() if k not in strip} == {k: v for k, v in live.items() if k not in strip}
