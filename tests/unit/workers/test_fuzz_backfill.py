"""Fuzzing the REST backfill: any historicalTrades (Binance) or Trades (Kraken) answer ends
as records, rejects or a failed request, and the backfill thread survives whatever its
fetch raises."""

from __future__ import annotations

import http.client
import json
import urllib.parse

from hypothesis import strategies as st
from test_fuzz_frames import check_contract
from worker_fuzzing import (
    REJECT_KINDS,
    SCALE,
    binance,
    byte_edits,
    fuzz,
    kraken,
    structure_mutations,
    sweep,
    truncations,
)

from workers.backfill import Backfiller, Done, Failed, Page, Unavailable, fetch_gap
from workers.exchanges.kraken_rest import parse_trades
from workers.normalize import NormalizeError
from workers.progress import Gap
from workers.rest_source import RestPage
from workers.stats import WorkerStats

# As Binance answers GET /api/v3/historicalTrades?symbol=BTCUSDT&fromId=5123456789&limit=3
RECORDED = [
    b'[{"id":5123456789,"price":"94250.01000000","qty":"0.00210000","quoteQty":"197.92502100",'
    b'"time":1767225600120000,"isBuyerMaker":true,"isBestMatch":true},'
    b'{"id":5123456790,"price":"94250.02000000","qty":"0.10000000","quoteQty":"9425.00200000",'
    b'"time":1767225600121500,"isBuyerMaker":false,"isBestMatch":true},'
    b'{"id":5123456791,"price":"94249.99000000","qty":"1.00000000","quoteQty":"94249.99000000",'
    b'"time":1767225600123000,"isBuyerMaker":true,"isBestMatch":true}]',
    b'{"code":-1121,"msg":"Invalid symbol."}',
    b"[]",
]
GAP = Gap(1, "BTCUSDT", 5123456789, 5123456791, "stream")
EXCHANGE = binance()


def check_page(exchange, page: RestPage) -> None:
    """Every record of a parsed REST page keeps the contract and is paged on; every reject
    has a known kind and keeps its item as JSON for the dead letter."""
    for record in page.records:
        check_contract(exchange, record)
        assert int(record["trade_id"]) in page.ids
    for error, raw in page.rejects:
        assert error.kind in REJECT_KINDS and isinstance(raw, bytes)
        json.loads(raw)  # the dead letter keeps the item as JSON
    assert all(type(i) is int and 0 <= i < 2**63 for i in page.ids)


def check_paging_ends(exchange, gap: Gap, script: list, cursor: str, when_done: tuple, max_requests: int) -> None:
    """Whatever REST answers (``script``, then ``when_done`` forever), paging ``gap`` ends
    (Done or Failed) within ``max_requests`` requests, and only the gap's trades come out."""
    script = list(script)
    requests = []

    def fetch(url: str, headers: dict, timeout_s: float):
        requests.append(urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)[cursor][0])
        return script.pop(0) if script else when_done

    events = list(fetch_gap(gap, exchange, "http://rest.test", 1000, fetch, lambda s: True, WorkerStats(exchange.name)))
    assert isinstance(events[-1], Done | Failed) and len(requests) <= max_requests, (events[-1], len(requests))
    assert all(isinstance(e, Page | Unavailable) for e in events[:-1])
    for page in (e for e in events if isinstance(e, Page)):
        assert all(gap.first <= int(r["trade_id"]) <= gap.last for r in page.page.records)


def check_body(body: bytes) -> None:
    try:
        page = EXCHANGE.parse_rest_trades(body, "BTCUSDT", 1)
    except NormalizeError as exc:
        assert exc.kind == "bad_rest_response" and len(str(exc)) <= 1000, exc
        return
    check_page(EXCHANGE, page)


def test_every_truncation_and_byte_edit_of_recorded_answers():
    assert sweep("rest_truncations", "binance", truncations(RECORDED), check_body) == sum(map(len, RECORDED))
    assert sweep("rest_byte_edits", "binance", byte_edits(RECORDED), check_body) > 10_000


def test_random_and_mutated_answers():
    assert fuzz("rest_random_bytes", "binance", st.binary(max_size=300), check_body, 500) >= 500 * SCALE
    assert fuzz("rest_structure", "binance", structure_mutations(RECORDED), check_body, 1000) >= 1000 * SCALE


def rest_answers(statuses: list[int], recorded: list[bytes]) -> st.SearchStrategy:
    """Scripts of (status, headers, body) answers: the exchange's statuses, Retry-After
    headers good and bad, and bodies mutated from, equal to or unlike ``recorded``."""
    answer = st.tuples(
        st.sampled_from(statuses),
        st.sampled_from([{}, {"Retry-After": "1"}, {"Retry-After": "x"}, {"Retry-After": "1e9"}]),
        st.one_of(structure_mutations(recorded[:1]), st.sampled_from(recorded), st.binary(max_size=50)),
    )
    return st.lists(answer, max_size=8)


def test_fetch_gap_ends_on_any_sequence_of_answers():
    def check(script: list) -> None:
        check_paging_ends(binance(), GAP, script, "fromId", (200, {}, b"[]"), 30)

    scripts = rest_answers([200, 200, 200, 418, 429, 500, 503], RECORDED)
    assert fuzz("rest_fetch_gap", "binance", scripts, check, 500) >= 500 * SCALE


def test_a_page_of_ids_below_from_id_fails_instead_of_paging_forever():
    stale = RECORDED[0].replace(b"51234567", b"41234567")
    events = list(fetch_gap(GAP, binance(), "http://rest.test", 1000, lambda u, h, t: (200, {}, stale),
                            lambda s: True, WorkerStats("b")))
    (failed,) = events
    assert isinstance(failed, Failed) and "are below 5123456789" in failed.reason


def test_a_body_cut_short_is_a_failed_request_not_a_dead_thread():
    def fetch(url: str, headers: dict, timeout_s: float):
        raise http.client.IncompleteRead(b"[{", 100)

    events = list(fetch_gap(GAP, binance(), "http://rest.test", 1000, fetch, lambda s: True, WorkerStats("b")))
    (failed,) = events
    assert isinstance(failed, Failed) and "IncompleteRead" in failed.reason


def test_the_backfill_thread_survives_an_unexpected_exception_and_serves_the_next_gap():
    calls = []

    def fetch(url: str, headers: dict, timeout_s: float):
        calls.append(url)
        if len(calls) == 1:
            raise RuntimeError("surprise")
        return 200, {}, RECORDED[0]

    stats = WorkerStats("binance")
    backfiller = Backfiller(binance(), "http://rest.test", 1000, stats, fetch=fetch)
    backfiller.start()
    try:
        backfiller.submit(GAP)
        failed = backfiller.results.get(timeout=10)
        backfiller.submit(GAP)
        page, done = backfiller.results.get(timeout=10), backfiller.results.get(timeout=10)
    finally:
        backfiller.stop()
    assert isinstance(failed, Failed) and failed.reason == "backfill_bug: RuntimeError: surprise"
    assert failed.next_id == GAP.first and stats.errors["backfill_bug"] == 1
    assert isinstance(page, Page) and [r["trade_id"] for r in page.page.records] == ["5123456789", "5123456790",
                                                                                    "5123456791"]
    assert isinstance(done, Done)


# Kraken ------------------------------------------------------------------------------

# As Kraken answers GET /0/public/Trades?pair=XBTUSD&since=...: trades, an error, nothing new.
KRAKEN_RECORDED = [
    b'{"error":[],"result":{"XXBTZUSD":['
    b'["94250.10000","0.01250000",1767225600.123456,"s","m","",81234567],'
    b'["94250.20000","0.50000000",1767225600.2,"b","l","",81234568],'
    b'["94250.30000","1.00000000",1767225600.2000013,"b","m","",81234569]],'
    b'"last":"1767225600200001300"}}',
    b'{"error":["EAPI:Rate limit exceeded"]}',
    b'{"error":[],"result":{"XXBTZUSD":[],"last":"1767225600200001300"}}',
]
KRAKEN_GAP = Gap(2, "BTC/USD", 81234567, 81234569, "stream")
KRAKEN = kraken()


def check_kraken_body(body: bytes) -> None:
    try:
        page, last = parse_trades(body, KRAKEN.pair("BTC/USD"), 1)
    except NormalizeError as exc:
        assert exc.kind in ("bad_rest_response", "rest_error") and len(str(exc)) <= 1000, exc
        return
    assert type(last) is int
    check_page(KRAKEN, page)


def test_kraken_every_truncation_and_byte_edit_of_recorded_answers():
    total = sum(map(len, KRAKEN_RECORDED))
    assert sweep("rest_truncations", "kraken", truncations(KRAKEN_RECORDED), check_kraken_body) == total
    assert sweep("rest_byte_edits", "kraken", byte_edits(KRAKEN_RECORDED), check_kraken_body) > 10_000


def test_kraken_random_and_mutated_answers():
    assert fuzz("rest_random_bytes", "kraken", st.binary(max_size=300), check_kraken_body, 300) >= 300 * SCALE
    assert fuzz("rest_structure", "kraken", structure_mutations(KRAKEN_RECORDED), check_kraken_body,
                600) >= 600 * SCALE


def test_kraken_fetch_gap_ends_on_any_sequence_of_answers():
    """Whatever Trades answers, the cursor included: see check_paging_ends."""

    def check(script: list) -> None:
        check_paging_ends(kraken(), KRAKEN_GAP, script, "since", (200, {}, KRAKEN_RECORDED[2]), 70)

    scripts = rest_answers([200, 200, 200, 200, 429, 500, 502], KRAKEN_RECORDED)
    assert fuzz("rest_fetch_gap", "kraken", scripts, check, 300) >= 300 * SCALE


def test_the_kraken_backfill_thread_survives_any_exception_from_fetch():
    calls = []

    def fetch(url: str, headers: dict, timeout_s: float):
        calls.append(url)
        raise (RuntimeError("surprise") if len(calls) == 1 else http.client.IncompleteRead(b"{", 9))

    stats = WorkerStats("kraken")
    backfiller = Backfiller(kraken(), "http://rest.test", 1000, stats, fetch=fetch)
    backfiller._sleep = lambda s: True  # the thread's waits are not what this test is about
    backfiller.start()
    try:
        backfiller.submit(KRAKEN_GAP)
        first = backfiller.results.get(timeout=10)
        backfiller.submit(KRAKEN_GAP)
        second = backfiller.results.get(timeout=10)
    finally:
        backfiller.stop()
    assert isinstance(first, Failed) and first.reason == "backfill_bug: RuntimeError: surprise"
    assert isinstance(second, Failed) and "IncompleteRead" in second.reason and stats.errors["backfill_bug"] == 1
