"""REST backfill: parsing historicalTrades answers, paging, 429/418, failures, accounting."""

import io
import json
import urllib.parse
from decimal import Decimal

import pytest

from k2.log import EventLog
from k2.polling import wait_until
from workers.backfill import Backfiller, Done, Failed, GapFiller, Page, Unavailable, fetch_gap
from workers.dlq import DeadLetters
from workers.exchanges.binance import Binance
from workers.normalize import NormalizeError
from workers.progress import Gap, Progress
from workers.stats import WorkerStats
from workers.symbols import SymbolTable

# As Binance answers GET /api/v3/historicalTrades?symbol=BTCUSDT&fromId=5123456789&limit=2
# with X-MBX-TIME-UNIT: MICROSECOND.
RECORDED = (
    b'[{"id":5123456789,"price":"94250.01000000","qty":"0.00210000","quoteQty":"197.92502100",'
    b'"time":1767225600120000,"isBuyerMaker":true,"isBestMatch":true},'
    b'{"id":5123456790,"price":"94250.02000000","qty":"0.10000000","quoteQty":"9425.00200000",'
    b'"time":1767225600121500,"isBuyerMaker":false,"isBestMatch":true}]'
)
RECEIVED = 1767225600200000


@pytest.fixture
def binance():
    return Binance(["BTCUSDT", "ETHUSDT"], SymbolTable.shipped(), microseconds=True)


def test_recorded_page_becomes_stream_identical_records(binance):
    page = binance.parse_rest_trades(RECORDED, "BTCUSDT", RECEIVED)
    assert page.ids == [5123456789, 5123456790] and page.rejects == []
    first, second = page.records
    assert first == {
        "message_id": "674774fa-a967-5477-a629-af0b3d460f45",  # the stream parser's id for this trade
        "trade_id": "5123456789", "symbol": "BTCUSDT", "exchange": "BINANCE",
        "timestamp": 1767225600120000, "price": Decimal("94250.01000000"), "quantity": Decimal("0.00210000"),
        "base_asset": "BTC", "quote_currency": "USDT", "side": "SELL", "ingestion_timestamp": RECEIVED,
        "vendor_data": {"buyer_is_maker": "true", "source": "rest"},
    }
    assert (second["side"], second["timestamp"]) == ("BUY", 1767225600121500)
    assert binance.rest_time_unit_header() == {"X-MBX-TIME-UNIT": "MICROSECOND"}


def test_milliseconds_when_the_stream_uses_them():
    ms = Binance(["BTCUSDT"], SymbolTable.shipped(), microseconds=False)
    body = b'[{"id":1,"price":"1.0","qty":"2.0","quoteQty":"2.0","time":1767225600120,"isBuyerMaker":false,"isBestMatch":true}]'
    assert ms.parse_rest_trades(body, "BTCUSDT", RECEIVED).records[0]["timestamp"] == 1767225600120000
    assert ms.rest_time_unit_header() == {}


def test_bad_items_are_rejected_good_ones_kept(binance):
    body = (b'[{"id":1,"price":"1.0","qty":"2.0","time":5,"isBuyerMaker":false},'
            b'{"id":2,"price":"1.123456789","qty":"2.0","time":5,"isBuyerMaker":false},'
            b'{"id":3,"price":null,"qty":"2.0","time":5,"isBuyerMaker":false}]')
    page = binance.parse_rest_trades(body, "BTCUSDT", RECEIVED)
    assert [r["trade_id"] for r in page.records] == ["1"] and page.ids == [1, 2, 3]
    assert [e.kind for e, _ in page.rejects] == ["decimal_out_of_range", "bad_trade"]
    assert json.loads(page.rejects[1][1])["id"] == 3


@pytest.mark.parametrize("body", [b'{"code":-1121,"msg":"Invalid symbol."}', b"<html>502</html>"])
def test_a_body_that_is_not_a_trade_array_is_an_error(binance, body):
    with pytest.raises(NormalizeError) as err:
        binance.parse_rest_trades(body, "BTCUSDT", RECEIVED)
    assert err.value.kind == "bad_rest_response"


class FakeRest:
    """Serves ids [oldest, newest] like historicalTrades, after scripted failure answers."""

    def __init__(self, oldest: int, newest: int, script: list[tuple[int, dict, bytes]] | None = None):
        self.oldest, self.newest = oldest, newest
        self.script = list(script or [])
        self.urls: list[str] = []
        self.headers: list[dict] = []

    def __call__(self, url: str, headers: dict, timeout_s: float):
        self.urls.append(url)
        self.headers.append(headers)
        if self.script:
            return self.script.pop(0)
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        start, limit = max(int(q["fromId"][0]), self.oldest), int(q["limit"][0])
        ids = range(start, min(self.newest, start + limit - 1) + 1)
        items = ",".join(
            f'{{"id":{i},"price":"100.{i % 100:02d}000000","qty":"1.00000000","quoteQty":"100.00000000",'
            f'"time":{1767225600000000 + i},"isBuyerMaker":{"true" if i % 2 else "false"},"isBestMatch":true}}'
            for i in ids)
        return 200, {}, f"[{items}]".encode()


def run(gap, binance, fetch, page_limit=1000):
    sleeps: list[float] = []
    stats = WorkerStats("binance")
    events = list(fetch_gap(gap, binance, "http://rest.test/", page_limit, fetch,
                            lambda s: sleeps.append(s) or True, stats))
    return events, sleeps, stats


def test_pages_until_the_gap_is_filled_and_no_further(binance):
    rest = FakeRest(1, 10_000)
    events, sleeps, stats = run(Gap(1, "BTCUSDT", 101, 125, "stream"), binance, rest, page_limit=10)
    pages = [e for e in events if isinstance(e, Page)]
    ids = [int(r["trade_id"]) for p in pages for r in p.page.records]
    assert ids == list(range(101, 126))
    assert [urllib.parse.parse_qs(urllib.parse.urlsplit(u).query)["fromId"][0] for u in rest.urls] == ["101", "111", "121"]
    assert rest.urls[-1].endswith("limit=5") and rest.urls[0].startswith("http://rest.test/api/v3/historicalTrades?")
    assert rest.headers[0] == {"X-MBX-TIME-UNIT": "MICROSECOND"}
    assert isinstance(events[-1], Done) and events[-1].requests == 3 and sleeps == []
    assert stats.backfill_requests == 3


def test_429_and_418_wait_retry_after_then_continue(binance):
    throttled = [(429, {"Retry-After": "3"}, b'{"code":-1003,"msg":"Too many requests"}'),
                 (418, {"retry-after": "7"}, b'{"code":-1003,"msg":"Way too many requests; IP banned"}')]
    events, sleeps, stats = run(Gap(1, "BTCUSDT", 5, 6, "restart"), binance, FakeRest(1, 100, throttled))
    assert sleeps == [3.0, 7.0]
    assert isinstance(events[-1], Done) and events[-1].throttled == 2 and stats.backfill_throttled == 2
    assert [r["trade_id"] for e in events if isinstance(e, Page) for r in e.page.records] == ["5", "6"]


def test_a_ban_longer_than_the_cap_fails_the_gap(binance):
    banned = [(418, {"Retry-After": "86400"}, b'{"code":-1003,"msg":"banned"}')]
    events, sleeps, _ = run(Gap(1, "BTCUSDT", 5, 6, "stream"), binance, FakeRest(1, 100, banned))
    assert sleeps == [] and isinstance(events[-1], Failed) and "418" in events[-1].reason


def test_errors_back_off_then_give_up_naming_the_cause(binance):
    errors = [(500, {}, b"oops")] * 5
    events, sleeps, _ = run(Gap(1, "BTCUSDT", 5, 6, "stream"), binance, FakeRest(1, 100, errors))
    assert sleeps == [0.5, 1.0, 2.0, 4.0]
    (failed,) = events
    assert isinstance(failed, Failed) and failed.next_id == 5 and "HTTP 500: oops" in failed.reason


def test_network_errors_are_retried(binance):
    class Flaky(FakeRest):
        def __call__(self, url, headers, timeout_s):
            if not self.urls:
                self.urls.append(url)
                raise ConnectionRefusedError(111, "Connection refused")
            return super().__call__(url, headers, timeout_s)

    events, sleeps, _ = run(Gap(1, "BTCUSDT", 5, 6, "stream"), binance, Flaky(1, 100))
    assert sleeps == [0.5] and isinstance(events[-1], Done)


def test_history_older_than_rest_keeps_is_reported_unavailable(binance):
    events, _, _ = run(Gap(1, "BTCUSDT", 1, 60, "restart"), binance, FakeRest(51, 100))
    unavailable = [e for e in events if isinstance(e, Unavailable)]
    assert [(e.first, e.last) for e in unavailable] == [(1, 50)]
    assert [int(r["trade_id"]) for e in events if isinstance(e, Page) for r in e.page.records] == list(range(51, 61))


def filler(binance, progress, backfiller, max_trades=1000, dead_lettered=None):
    out, produced = io.StringIO(), []
    stats = WorkerStats("binance")
    sink = dead_lettered if dead_lettered is not None else []
    dlq = DeadLetters("binance", lambda k, v: sink.append((k, json.loads(v))), EventLog(out))
    gf = GapFiller(progress, backfiller, produced.append, dlq, stats, EventLog(out), max_trades,
                   "" if backfiller else "backfill disabled (K2_WORKERS_BACKFILL=false)")
    return gf, produced, stats, out


def fill(gf, progress, backfiller) -> None:
    """Run the backfill thread until every gap is closed (10 s at most)."""
    def pumped() -> bool:
        gf.pump()
        return not progress.open_gaps

    backfiller.start()
    try:
        wait_until(pumped, 10, "every gap closed", interval=0.01)
    finally:
        backfiller.stop()


def log_lines(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_gap_filler_produces_closes_and_logs(binance):
    progress = Progress({"BTCUSDT": 100})
    progress.seen("BTCUSDT", "130")
    backfiller = Backfiller(binance, "http://rest.test", 10, WorkerStats("binance"), fetch=FakeRest(1, 1000))
    gf, produced, stats, out = filler(binance, progress, backfiller)
    fill(gf, progress, backfiller)
    assert [r["trade_id"] for r in produced] == [str(i) for i in range(101, 130)]
    assert progress.open_gaps == {} and stats.backfill_trades == 29 and stats.gaps == 1
    for i in range(101, 131):
        progress.acked("BTCUSDT", str(i))
    assert progress.watermark("BTCUSDT") == 130
    events = [e for e in log_lines(out) if e["event"].startswith("backfill_")]
    assert [e["event"] for e in events] == ["backfill_started", "backfill_done"]
    done = {k: events[1][k] for k in ("symbol", "from_id", "to_id", "cause", "trades")}
    assert done == {"symbol": "BTCUSDT", "from_id": 101, "to_id": 129, "cause": "restart", "trades": 29}


def test_history_rest_no_longer_serves_is_logged_and_recorded_on_the_dlq_topic(binance):
    progress = Progress({"BTCUSDT": 0})
    progress.seen("BTCUSDT", "61")
    backfiller = Backfiller(binance, "http://rest.test", 10, WorkerStats("binance"), fetch=FakeRest(51, 100))
    dead_lettered: list = []
    gf, produced, stats, out = filler(binance, progress, backfiller, dead_lettered=dead_lettered)
    fill(gf, progress, backfiller)
    assert [r["trade_id"] for r in produced] == [str(i) for i in range(51, 61)]
    assert stats.backfill_lost == 50
    ((key, record),) = dead_lettered
    assert key == b"binance" and record["error_kind"] == "unrecoverable_range"
    assert record["lost_range"] == {"symbol": "BTCUSDT", "first_id": 1, "last_id": 50}
    assert record["endpoint"].startswith("http://rest.test/") and record["raw"] == ""
    assert "BTCUSDT trades 1..50 (50 trades)" in record["error"]
    (failed,) = [e for e in log_lines(out) if e["event"] == "backfill_failed"]
    assert (failed["from_id"], failed["to_id"], failed["lost"]) == (1, 50, 50)


def test_gap_over_the_cap_fetches_only_the_newest_trades(binance):
    progress = Progress({"BTCUSDT": 0})
    progress.seen("BTCUSDT", "5001")

    class Recorder:
        results = None
        submitted: list[Gap] = []

        def submit(self, gap):
            self.submitted.append(gap)

    rec = Recorder()
    gf, _, stats, out = filler(binance, progress, rec, max_trades=1000)
    gf._start(progress.take_new_gaps()[0])
    assert [(g.first, g.last) for g in rec.submitted] == [(4001, 5000)]
    assert stats.backfill_lost == 4000
    failed = [e for e in log_lines(out) if e["event"] == "backfill_failed"]
    assert failed[0]["lost"] == 4000 and "K2_WORKERS_BACKFILL_MAX_TRADES" in failed[0]["reason"]
    assert progress.watermark("BTCUSDT") == 0  # still open: nothing acknowledged past the gap


def test_without_backfill_gaps_are_counted_lost(binance):
    progress = Progress({"BTCUSDT": 0})
    progress.seen("BTCUSDT", "11")
    gf, produced, stats, out = filler(binance, progress, None)
    gf.pump()
    assert produced == [] and stats.backfill_lost == 10 and progress.open_gaps == {}
    (failed,) = [e for e in log_lines(out) if e["event"] == "backfill_failed"]
    assert "K2_WORKERS_BACKFILL=false" in failed["reason"]
