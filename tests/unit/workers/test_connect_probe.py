"""The connect probe: each symbol's newest id over REST (Binance and Kraken), so a symbol
that stays quiet after a restart or reconnect is backfilled from its watermark at once."""

from __future__ import annotations

import io
import json
import queue
import time
import urllib.parse

import pytest

from k2.log import EventLog
from k2.polling import wait_until
from workers.backfill import Backfiller, Done, GapFiller, Latest, Pacer, probe_latest
from workers.dlq import DeadLetters
from workers.exchanges.binance import Binance
from workers.exchanges.kraken import ASSET_ALIASES, Kraken
from workers.progress import Progress
from workers.simulator.market import Tape
from workers.simulator.venues.binance import binance_trades
from workers.simulator.venues.kraken import kraken_pair_symbols, kraken_trades_reply
from workers.stats import WorkerStats
from workers.symbols import SymbolTable

TABLE = SymbolTable.shipped()
LIMITED = (200, {}, b'{"error":["EAPI:Rate limit exceeded"]}')


def tapes() -> dict[str, Tape]:
    now = time.time_ns() // 1000 - 60_000_000
    kraken = Tape(["BTC/USD", "ETH/USD"], {"BTC/USD": "BTC", "ETH/USD": "ETH"}, 5, 1)
    binance = Tape(["BTCUSDT", "ETHUSDT"], {"BTCUSDT": "BTC", "ETHUSDT": "ETH"}, 6, 2, pad_to=8)
    for i in range(400):
        kraken.next(now + 100_000 * i)
        binance.next(now + 100_000 * i)
    return {"kraken": kraken, "binance": binance}


class Rest:
    """Answers from the simulator's handlers, after scripted faults."""

    def __init__(self, tapes: dict[str, Tape], faults: list | None = None):
        self.tapes, self.faults, self.urls = tapes, list(faults or []), []
        self.pairs = kraken_pair_symbols(tapes["kraken"].symbols, ASSET_ALIASES)

    def __call__(self, url: str, headers: dict, timeout_s: float):
        self.urls.append(url)
        if self.faults:
            fault = self.faults.pop(0)
            if isinstance(fault, Exception):
                raise fault
            return fault
        parts = urllib.parse.urlsplit(url)
        query = urllib.parse.parse_qs(parts.query)
        if parts.path.startswith("/0/"):
            reply = kraken_trades_reply(parts.path, query, self.tapes["kraken"], self.pairs)
        else:
            reply = binance_trades(parts.path, query, headers, self.tapes["binance"])
        return reply.status, reply.headers, reply.body.encode()


@pytest.fixture
def exchanges() -> dict:
    return {"kraken": Kraken(["BTC/USD", "ETH/USD"], TABLE), "binance": Binance(["BTCUSDT", "ETHUSDT"], TABLE)}


@pytest.mark.parametrize(("name", "symbol"), [("kraken", "ETH/USD"), ("binance", "ETHUSDT")])
def test_probe_answers_the_newest_trade_id(exchanges, name, symbol):
    t = tapes()
    rest = Rest(t)
    latest = probe_latest(symbol, exchanges[name], "http://rest.test", rest, lambda s: True, WorkerStats(name), Pacer())
    assert latest == Latest(symbol, t[name].archive[symbol][-1].trade_id)
    assert len(rest.urls) == 1 and "since" not in rest.urls[0] and "fromId" not in rest.urls[0]


def test_probe_waits_out_the_rate_limit_then_gives_up_after_three_attempts(exchanges):
    sleeps: list[float] = []
    stats = WorkerStats("kraken")
    rest = Rest(tapes(), [LIMITED, LIMITED, LIMITED])
    latest = probe_latest("BTC/USD", exchanges["kraken"], "http://rest.test", rest, lambda s: sleeps.append(s) or True,
                          stats, Pacer())
    assert latest.trade_id is None and "EAPI:Rate limit exceeded" in latest.reason and "3 attempts" in latest.reason
    assert [s for s in sleeps if s > 1.0] == [5.0, 5.0] and stats.backfill_throttled == 3
    rest = Rest(tapes(), [LIMITED, OSError("refused")])
    assert probe_latest("BTC/USD", exchanges["kraken"], "http://rest.test", rest, lambda s: True, stats,
                        Pacer()).trade_id is not None  # the third attempt answers


def test_progress_probed_opens_the_gap_from_the_watermark():
    progress = Progress({"BTC/USD": 100, "ETH/USD": 50})
    assert progress.probed("BTC/USD", 130) and not progress.probed("ETH/USD", 50)
    assert not progress.probed("SOL/USD", 10)  # never seen: nothing to backfill from
    (gap,) = progress.take_new_gaps()
    assert (gap.symbol, gap.first, gap.last, gap.cause) == ("BTC/USD", 101, 130, "restart")
    progress.seen("BTC/USD", "131")  # the next live trade opens no second gap
    assert progress.take_new_gaps() == [] and progress.watermark("BTC/USD") == 100


@pytest.mark.parametrize(("name", "symbols"), [("kraken", ["BTC/USD", "ETH/USD"]), ("binance", ["BTCUSDT", "ETHUSDT"])])
def test_quiet_symbols_are_backfilled_at_connect_without_a_live_trade(exchanges, name, symbols):
    t = tapes()
    floors = {s: t[name].archive[s][-40].trade_id for s in symbols}  # the state file after a restart
    progress = Progress(floors)
    out, produced = io.StringIO(), []
    stats = WorkerStats(name)
    log = EventLog(out)
    backfiller = Backfiller(exchanges[name], "http://rest.test", 1000, stats, fetch=Rest(t))
    backfiller._sleep = lambda s: True  # pacing is tested elsewhere; keep this test fast
    gf = GapFiller(progress, backfiller, produced.append, DeadLetters(name, lambda k, v: None, log), stats, log, 10_000,
                   probe_settle_s=0.0)

    def pumped() -> bool:
        gf.pump()
        return len(produced) >= 78

    backfiller.start()
    try:
        gf.probe(symbols)
        wait_until(pumped, 20, "the 78 trades of both quiet symbols backfilled", interval=0.01)
    finally:
        backfiller.stop()
    expected = {(s, str(a.trade_id)) for s in symbols for a in list(t[name].archive[s])[-39:]}
    assert len(expected) == 78 and {(r["symbol"], r["trade_id"]) for r in produced} == expected
    assert len(produced) == 78 and progress.open_gaps == {}
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    probed = [e for e in events if e["event"] == "probed"]
    assert sorted((e["symbol"], e["gap"]) for e in probed) == [(s, True) for s in symbols]


class QueuedAnswers:
    """A backfiller stand-in: the test puts probe answers; submitted gaps are kept."""

    def __init__(self) -> None:
        self.results: queue.Queue = queue.Queue()
        self.gaps: list = []
        self.probed: list[str] = []

    def submit(self, gap) -> None:
        self.gaps.append(gap)

    def probe(self, symbol: str) -> None:
        self.probed.append(symbol)


def _answered_then_one_trade(latest: int) -> tuple[GapFiller, Progress, QueuedAnswers, list[float], io.StringIO]:
    """The stream saw BTC/USD 100; the probe answers ``latest``; the stream then delivers
    101, and 2.9 s pass: the answer has not settled yet (3 s)."""
    progress = Progress()
    progress.seen("BTC/USD", "100")
    now, out, answers = [1000.0], io.StringIO(), QueuedAnswers()
    log = EventLog(out)
    gf = GapFiller(progress, answers, lambda r: None, DeadLetters("kraken", lambda k, v: None, log),  # type: ignore[arg-type]
                   WorkerStats("kraken"), log, 10_000, clock=lambda: now[0], probe_settle_s=3.0)
    answers.results.put(Latest("BTC/USD", latest))
    gf.pump()
    progress.seen("BTC/USD", "101")
    now[0] += 2.9
    gf.pump()
    return gf, progress, answers, now, out


def test_a_probe_answer_ahead_of_the_stream_opens_no_gap_when_the_stream_delivers_in_time():
    # REST already lists 101 and 102; the stream delivers them a moment later.
    gf, progress, answers, now, out = _answered_then_one_trade(102)
    progress.seen("BTC/USD", "102")
    now[0] += 0.2
    gf.pump()
    assert answers.gaps == [] and progress.open_gaps == {}
    (probed,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert (probed["event"], probed["latest"], probed["last_seen"], probed["gap"]) == ("probed", 102, 102, False)


def test_a_probe_answer_the_stream_has_not_delivered_after_settling_opens_the_gap():
    gf, progress, answers, now, out = _answered_then_one_trade(105)  # the stream stays quiet after 101
    assert answers.gaps == []  # not settled yet
    now[0] += 0.2
    gf.pump()
    (gap,) = answers.gaps
    assert (gap.symbol, gap.first, gap.last, gap.cause) == ("BTC/USD", 102, 105, "stream")
    events = [json.loads(line)["event"] for line in out.getvalue().splitlines()]
    assert events == ["probed", "backfill_started"]


def test_pending_counts_probes_until_they_settle_and_gaps_until_they_are_filled():
    # What the worker's summary and k2_worker_backfill_pending report: 0 only once it has
    # caught up with everything it knows it missed.
    progress = Progress()
    progress.seen("BTC/USD", "100")
    progress.seen("ETH/USD", "7")
    now, out, answers = [1000.0], io.StringIO(), QueuedAnswers()
    log = EventLog(out)
    gf = GapFiller(progress, answers, lambda r: None, DeadLetters("kraken", lambda k, v: None, log),  # type: ignore[arg-type]
                   WorkerStats("kraken"), log, 10_000, clock=lambda: now[0], probe_settle_s=3.0)
    assert gf.pending == 0
    gf.probe(["BTC/USD", "ETH/USD", "SOL/USD"])  # SOL/USD never traded here: nothing to probe for
    assert answers.probed == ["BTC/USD", "ETH/USD"] and gf.pending == 2
    answers.results.put(Latest("ETH/USD", None, "URLError"))  # a failed probe is settled too
    answers.results.put(Latest("BTC/USD", 105))
    gf.pump()
    assert gf.pending == 1  # BTC/USD's answer waits out the settle time
    now[0] += 3.1
    gf.pump()
    (gap,) = answers.gaps  # 101..105 opened: now the gap is what is pending
    assert (gap.first, gap.last) == (101, 105) and gf.pending == 1
    answers.results.put(Done(gap, requests=1, throttled=0, seconds=0.1))
    gf.pump()
    assert gf.pending == 0 and progress.open_gaps == {}
