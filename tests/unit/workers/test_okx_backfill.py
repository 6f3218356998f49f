"""OKX gap backfill over REST history-trades: pages parsed like the stream, paging by
``after`` upwards through a gap, history no longer served, the rate limit, the probe."""

from __future__ import annotations

import json
import urllib.parse
from decimal import Decimal
from pathlib import Path

import pytest

from workers.backfill import Done, Failed, Page, Unavailable, fetch_gap
from workers.exchanges import okx
from workers.exchanges.okx import Okx, OkxTrades
from workers.normalize import NormalizeError
from workers.progress import Gap
from workers.rest_source import Got, Problem, Throttled
from workers.simulator.market import Tape
from workers.simulator.venues import okx as sim
from workers.stats import WorkerStats
from workers.symbols import SymbolTable

FRAMES = Path(__file__).with_name("frames") / "okx"
TABLE = SymbolTable.shipped()


def okx_tape(symbols: list[str], seed: int, archive_depth: int) -> Tape:
    """The simulated OKX market the server would build: prices on the venue's tick."""
    return Tape(symbols, {s: s.split("-")[0] for s in symbols}, seed, sim.PRICE_DECIMALS, archive_depth=archive_depth)
RECEIVED = 1767225602000000


@pytest.fixture
def venue() -> Okx:
    return Okx(["BTC-USDT", "ETH-USDT"], TABLE)


def test_recorded_history_page_equals_the_stream_records(venue):
    page = venue.parse_rest_trades((FRAMES / "history_trades.json").read_bytes(), "BTC-USDT", RECEIVED)
    assert page.ids == [745519723, 745519722, 745519721] and page.rejects == []
    stream = [t for line in (FRAMES / "trades_all.jsonl").read_text().splitlines()
              for t in venue.parse(line, RECEIVED).trades if t["symbol"] == "BTC-USDT"]
    rest = sorted(page.records, key=lambda r: int(r["trade_id"]))
    assert [{**r, "vendor_data": {}} for r in rest] == [{**s, "vendor_data": {}} for s in stream]
    assert rest[0]["vendor_data"] == {"order_source": "0", "source": "rest"}


def test_bad_items_are_rejected_and_still_page_on(venue):
    body = json.dumps({"code": "0", "msg": "", "data": [
        {"instId": "BTC-USDT", "side": "buy", "sz": "1", "px": "1", "tradeId": "7", "ts": "1"},
        {"instId": "BTC-USDT", "side": "buy", "sz": "1", "px": "1.123456789", "tradeId": "8", "ts": "1"},
        {"instId": "ETH-USDT", "side": "buy", "sz": "1", "px": "1", "tradeId": "9", "ts": "1"},
        {"instId": "BTC-USDT", "side": "buy", "sz": 1, "px": "1", "tradeId": "10", "ts": "1"},
        "nope",
    ]}).encode()
    page = venue.parse_rest_trades(body, "BTC-USDT", RECEIVED)
    assert [r["trade_id"] for r in page.records] == ["7"]
    assert page.ids == [7, 8, 9, 10]
    assert [e.kind for e, _ in page.rejects] == ["decimal_out_of_range", "bad_trade", "bad_trade", "bad_trade"]
    assert "not the requested 'BTC-USDT'" in str(page.rejects[1][0])
    assert all(json.loads(raw) is not None for _, raw in page.rejects)


@pytest.mark.parametrize(("body", "kind"), [
    (b'{"code":"51001","msg":"Instrument ID does not exist.","data":[]}', "rest_error"),
    (b'{"code":"0","msg":"","data":{}}', "bad_rest_response"),
    (b"[]", "bad_rest_response"),
    (b"<html>", "bad_rest_response"),
])
def test_answers_that_are_not_trades_raise_a_typed_error(venue, body, kind):
    with pytest.raises(NormalizeError) as err:
        venue.parse_rest_trades(body, "BTC-USDT", RECEIVED)
    assert err.value.kind == kind


# the source's decisions ---------------------------------------------------------------

GAP = Gap(1, "BTC-USDT", 1000, 1249, "stream")


def query_of(url: str) -> dict[str, str]:
    parts = urllib.parse.urlsplit(url)
    assert parts.path == "/api/v5/market/history-trades"
    return dict(urllib.parse.parse_qsl(parts.query))


def test_requests_page_upwards_by_trade_id_and_stop_at_the_gap(venue):
    source = venue.rest_source("https://rest.test/", 1000)  # a Binance-sized setting is capped at 100
    assert query_of(source.request(GAP, 1000, None)[0]) == {"instId": "BTC-USDT", "type": "1", "after": "1100",
                                                            "limit": "100"}
    assert query_of(source.request(GAP, 1200, None)[0])["after"] == "1250"  # ids up to the gap's last
    assert query_of(source.request(GAP, 1200, None)[0])["limit"] == "50"
    url, headers = source.latest_request("ETH-USDT")
    assert url == "https://rest.test/api/v5/market/trades?instId=ETH-USDT&limit=1" and headers == {}
    assert (source.min_interval_s, source.url_setting) == (0.1, "K2_OKX_REST_URL")


def answer(source: OkxTrades, status: int, body: dict | bytes, headers: dict | None = None, next_id: int = 1000):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return source.answer(status, headers or {}, raw, GAP, next_id, None, RECEIVED)


def item(tid: int) -> dict:
    return {"instId": "BTC-USDT", "side": "sell", "sz": "0.5", "source": "0", "px": "94250.1",
            "tradeId": str(tid), "ts": "1767225600120"}


def test_answers_mean_trades_nothing_yet_or_wait(venue):
    source = venue.rest_source("https://rest.test", 100)
    got = answer(source, 200, {"code": "0", "msg": "", "data": [item(1001), item(1000)]})
    assert isinstance(got, Got) and got.page.ids == [1001, 1000]
    assert isinstance(answer(source, 200, {"code": "0", "msg": "", "data": []}), Problem)  # REST trails the stream
    below = answer(source, 200, {"code": "0", "msg": "", "data": [item(990)]})
    assert isinstance(below, Problem) and "no trades from id 1000" in below.problem
    limited = answer(source, 429, {"code": "50011", "msg": "Too Many Requests", "data": []})
    assert isinstance(limited, Throttled) and limited.wait_s == 2.0
    assert answer(source, 429, b"{}", {"Retry-After": "5"}).wait_s == 5.0
    in_body = answer(source, 200, {"code": "50011", "msg": "Rate limit reached.", "data": []})
    assert isinstance(in_body, Throttled)
    assert isinstance(answer(source, 400, {"code": "51000", "msg": "Parameter after error", "data": []}), Problem)
    assert isinstance(answer(source, 200, {"code": "51001", "msg": "Instrument ID does not exist.", "data": []}),
                      Problem)


# paging against the simulator's history-trades ----------------------------------------


def live_tape(depth: int = 10_000, trades: int = 3000) -> Tape:
    t = okx_tape(["BTC-USDT", "ETH-USDT"], 5, depth)
    for i in range(trades):
        t.next(1767225600000000 + 1000 * i)
    return t


class Rest:
    """A fake fetch answering from the simulator's handler, with scripted answers first."""

    def __init__(self, tape: Tape, scripted: list[tuple[int, dict, bytes]] | None = None):
        self.tape, self.scripted, self.queries = tape, list(scripted or []), []

    def __call__(self, url: str, headers: dict, timeout_s: float):
        parts = urllib.parse.urlsplit(url)
        query = urllib.parse.parse_qs(parts.query)
        self.queries.append(query)
        if self.scripted:
            return self.scripted.pop(0)
        reply = sim.rest_trades(parts.path, query, self.tape)
        return reply.status, reply.headers, reply.body.encode()


def run(venue: Okx, gap: Gap, rest: Rest, page_limit: int = 100):
    sleeps: list[float] = []
    events = list(fetch_gap(gap, venue, "http://rest.test/", page_limit, rest,
                            lambda s: sleeps.append(s) or True, WorkerStats("okx")))
    return events, sleeps


def ids_of(events) -> list[int]:
    return [int(r["trade_id"]) for e in events if isinstance(e, Page) for r in e.page.records]


def test_a_gap_is_filled_once_each_in_pages_of_100(venue):
    tape = live_tape()
    archive = list(tape.archive["BTC-USDT"])
    first, last = archive[100].trade_id, archive[-50].trade_id
    rest = Rest(tape)
    events, _ = run(venue, Gap(1, "BTC-USDT", first, last, "stream"), rest)
    assert sorted(ids_of(events)) == list(range(first, last + 1)) and len(ids_of(events)) == last - first + 1
    assert isinstance(events[-1], Done) and events[-1].requests == -(-(last - first + 1) // 100)
    assert all(q["type"] == ["1"] and int(q["limit"][0]) <= 100 for q in rest.queries)


def test_history_no_longer_served_is_reported_unavailable_and_the_rest_filled(venue):
    tape = live_tape(depth=500)
    oldest = tape.archive["ETH-USDT"][0].trade_id
    events, _ = run(venue, Gap(2, "ETH-USDT", oldest - 40, oldest + 9, "restart"), Rest(tape))
    (unavailable,) = [e for e in events if isinstance(e, Unavailable)]
    assert (unavailable.first, unavailable.last) == (oldest - 40, oldest - 1)
    assert sorted(ids_of(events)) == list(range(oldest, oldest + 10))
    assert isinstance(events[-1], Done)


def test_rate_limited_answers_wait_then_resume(venue):
    tape = live_tape()
    first = tape.archive["BTC-USDT"][10].trade_id
    limited = sim.rate_limited()
    rest = Rest(tape, [(limited.status, {}, limited.body.encode())] * 2)
    events, sleeps = run(venue, Gap(3, "BTC-USDT", first, first + 149, "stream"), rest)
    assert sorted(ids_of(events)) == list(range(first, first + 150))
    assert sleeps.count(okx.RATE_LIMITED_WAIT_S) == 2 and isinstance(events[-1], Done)


def test_an_unknown_instrument_fails_the_gap_with_the_reason(venue):
    events, _ = run(venue, Gap(4, "BTC-USDT", 1, 5, "stream"), Rest(okx_tape(["ETH-USDT"], 1, 10)))
    assert isinstance(events[-1], Failed) and "51001" in events[-1].reason


def test_probe_reads_the_newest_trade(venue):
    tape = live_tape()
    source = venue.rest_source("http://rest.test", 100)
    url, _ = source.latest_request("BTC-USDT")
    parts = urllib.parse.urlsplit(url)
    reply = sim.rest_trades(parts.path, urllib.parse.parse_qs(parts.query), tape)
    got = source.latest_answer(reply.status, reply.headers, reply.body.encode(), "BTC-USDT", RECEIVED)
    assert isinstance(got, Got) and got.page.ids == [tape.archive["BTC-USDT"][-1].trade_id]
    assert got.page.records[0]["price"] == Decimal(tape.archive["BTC-USDT"][-1].price)
