"""A worker's shards against the in-process simulator on loopback (no Kafka): several
connections in one select loop, one dropping alone, symbols listed and delisted live,
connections paced by the venue's rate on a fake clock."""

from __future__ import annotations

import io
import socket

import pytest

from k2.log import EventLog
from k2.polling import wait_until
from tests.fake_clock import FakeClock
from tests.unit.workers.test_connection_lifecycle import Collect, contiguous, events_of, settings
from workers.base import ConnectionLimits, Rate
from workers.exchanges.binance import Binance
from workers.shards import ShardSet
from workers.simulator import SimulatorConfig, SimulatorThread
from workers.simulator.server import default_symbols
from workers.stats import WorkerStats
from workers.symbols import SymbolTable

SIX = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT")


@pytest.fixture
def sim():
    s = SimulatorThread(SimulatorConfig(rate=300, seed=7, symbols={**default_symbols(), "binance": SIX + ("ADAUSDT",)}))
    yield s
    s.stop()


def turn_until(shards: ShardSet, condition, what: str, timeout: float = 15.0):
    def turned():
        shards.turn()
        return condition()

    return wait_until(turned, timeout, what, interval=0)


def served(sim) -> list[list[str]]:
    """What each open simulator connection streams, as the server sees it."""
    return sorted(sorted(s.subscribed) for s in sim.call(lambda: sim.sim.sessions("binance")))


def build(sim, symbols=SIX, max_symbols=2, reconnected=None, clock=None, **env: str):
    exchange = Binance(list(symbols), SymbolTable.shipped())
    handler, stats, out = Collect(exchange), WorkerStats("binance"), io.StringIO()
    s = settings(binance_urls=sim.urls()["binance"], workers_watchdog_s="1000", workers_backoff_base_s="0.1",
                 workers_backoff_cap_s="0.1", **env)
    shards = ShardSet(exchange, s, handler, stats, EventLog(out), max_symbols=max_symbols,
                      on_reconnected=reconnected, clock=clock or FakeClock())
    return exchange, shards, handler, stats, out


def symbols_seen(handler, since: int = 0) -> set[str]:
    return {t["symbol"] for t in handler.trades[since:]}


def test_symbols_split_over_shards_each_streaming_its_own(sim):
    exchange, shards, handler, stats, out = build(sim)
    assert [s.symbols for s in shards.shards] == [list(SIX[0:2]), list(SIX[2:4]), list(SIX[4:6])]
    turn_until(shards, lambda: symbols_seen(handler) == set(SIX) and len(handler.trades) >= 300, "trades of all six")
    assert served(sim) == sorted(sorted(SIX[i : i + 2]) for i in (0, 2, 4))
    assert {sid: (st.connected, st.symbols) for sid, st in stats.shards.items()} == {
        1: (True, 2), 2: (True, 2), 3: (True, 2)}
    assert sorted(e["shard"] for e in events_of(out, "connected")) == [1, 2, 3]  # logs carry the shard
    (planned,) = events_of(out, "shards_planned")
    assert planned["per_shard"] == [2, 2, 2]
    shards.close_all()
    assert contiguous(handler.trades) and not stats.connected


def test_a_dropped_shard_reconnects_alone_while_the_others_keep_streaming(sim):
    probed: list[list[str]] = []
    exchange, shards, handler, stats, out = build(sim, reconnected=probed.append)
    turn_until(shards, lambda: len(shards.links()) == 3 and symbols_seen(handler) == set(SIX), "three shards up")
    before = {s.id: s.manager.active() for s in shards.shards}
    victim = shards.shards[1]
    victim.manager.active().ws.sock.shutdown(socket.SHUT_RDWR)  # the network drops this one connection
    turn_until(shards, lambda: victim.manager.active() not in (None, before[2]), "shard 2 connected again")
    assert probed == [list(SIX[2:4])]  # its symbols only, for the backfill probe
    assert shards.shards[0].manager.active() is before[1] and shards.shards[2].manager.active() is before[3]
    closed = events_of(out, "connection_closed")
    assert [(e["shard"], e["reason"]) for e in closed] == [(2, "connection_error")]
    seen = len(handler.trades)
    turn_until(shards, lambda: symbols_seen(handler, seen) == set(SIX), "all six again")
    assert stats.connected and all(st.connected for st in stats.shards.values())
    shards.close_all()


def test_listed_symbols_join_a_shard_with_room_or_a_new_one_and_delisted_ones_leave(sim):
    exchange, shards, handler, stats, out = build(sim, symbols=SIX[:5], max_symbols=3)
    turn_until(shards, lambda: symbols_seen(handler) == set(SIX[:5]), "the first five")
    links = {s.id: s.manager.active() for s in shards.shards}
    exchange.add_pairs([SymbolTable.shipped().lookup("binance", s) for s in ("DOGEUSDT", "ADAUSDT")])
    shards.add(["DOGEUSDT", "ADAUSDT"])  # shard 2 has room for one, the other opens shard 3
    assert [s.symbols for s in shards.shards] == [list(SIX[:3]), ["SOLUSDT", "XRPUSDT", "DOGEUSDT"], ["ADAUSDT"]]
    seen = len(handler.trades)
    turn_until(shards, lambda: {"DOGEUSDT", "ADAUSDT"} <= symbols_seen(handler, seen), "the listed symbols trade")
    assert {s.id: s.manager.active() for s in shards.shards if s.id in links} == links  # no reconnect
    assert [e["symbols"] for e in events_of(out, "shard_subscribing")] == [["DOGEUSDT"]]
    shards.remove(["ETHUSDT", "ADAUSDT"])  # shard 3 is left empty: closed
    assert [s.id for s in shards.shards] == [1, 2] and 3 not in stats.shards
    turn_until(shards, lambda: ["BNBUSDT", "BTCUSDT"] in served(sim), "the server unsubscribed ETHUSDT")
    seen = len(handler.trades)
    turn_until(shards, lambda: len(handler.trades) >= seen + 200, "more trades")
    assert symbols_seen(handler, seen) == {"BTCUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"}
    assert {s.id: s.manager.active() for s in shards.shards} == {1: links[1], 2: links[2]}
    (closed,) = events_of(out, "shard_closed")
    assert closed["shard"] == 3 and closed["symbols"] == ["ADAUSDT"]
    shards.close_all()


class SlowConnects(Binance):
    limits = ConnectionLimits(per_connection=1024, messages=Rate(4, 1.0), connects=Rate(1, 2.0))


def test_new_connections_are_paced_to_the_venue_rate(sim):
    clock = FakeClock()
    exchange = SlowConnects(list(SIX), SymbolTable.shipped())
    out = io.StringIO()
    s = settings(binance_urls=sim.urls()["binance"], workers_watchdog_s="1000")
    shards = ShardSet(exchange, s, Collect(exchange), WorkerStats("binance"), EventLog(out), max_symbols=2, clock=clock)
    for _ in range(20):
        shards.turn(0.001)
    assert len(shards.links()) == 1  # one connection per 2 s, and the fake clock stood still
    clock.advance(1.9)
    shards.turn(0.001)
    assert len(shards.links()) == 1
    clock.advance(0.2)
    turn_until(shards, lambda: len(shards.links()) == 2, "the second after 2 s")
    clock.advance(2.1)
    turn_until(shards, lambda: len(shards.links()) == 3, "the third after 4 s")
    shards.close_all()


def test_live_subscribe_messages_are_paced_per_connection(sim):
    clock = FakeClock()
    exchange, shards, handler, stats, out = build(sim, symbols=SIX[:1], max_symbols=None, clock=clock)
    turn_until(shards, lambda: len(shards.links()) == 1, "connected")
    table = SymbolTable.shipped()
    for symbol in SIX[1:]:  # five changes, one message each: Binance takes 4 a second from us
        exchange.add_pairs([table.lookup("binance", symbol)])
        shards.add([symbol])
    shards.turn(0.001)
    (shard,) = shards.shards
    assert [len(q) for q in shard.outbox.values()] == [1]
    clock.advance(1.0)
    shards.turn(0.001)
    assert [len(q) for q in shard.outbox.values()] == [0]
    turn_until(shards, lambda: served(sim) == [sorted(SIX)], "all six subscribed on the one connection")
    shards.close_all()


def test_streams_past_the_url_are_subscribed_by_message_at_connect(sim, monkeypatch):
    monkeypatch.setattr("workers.exchanges.binance.URL_STREAMS", 2)  # as if 200 were 2
    exchange, shards, handler, stats, out = build(sim, max_symbols=None)
    turn_until(shards, lambda: symbols_seen(handler) == set(SIX), "trades of all six on one connection")
    assert served(sim) == [sorted(SIX)]
    (link,) = shards.links()
    assert link.url.endswith("streams=btcusdt@trade/ethusdt@trade&timeUnit=MICROSECOND")
    shards.close_all()


class Pacing:
    """ShardSet.run's stop and sleep: stops after ``turns`` turns (or once ``enough()``),
    records each requested sleep against the turn it followed."""

    def __init__(self, turns: int, enough=lambda: False):
        self.turns, self.enough = turns, enough
        self.turned = 0
        self.slept: dict[int, float] = {}

    def should_stop(self) -> bool:
        return self.turned >= self.turns or self.enough()

    def after_turn(self) -> None:
        self.turned += 1

    def sleep(self, seconds: float) -> None:
        self.slept[self.turned] = seconds


def test_quiet_connections_are_read_once_per_read_interval(sim):
    exchange, shards, handler, stats, out = build(sim, max_symbols=None)
    turn_until(shards, lambda: len(handler.trades) >= 10, "streaming")
    pacing = Pacing(turns=30)
    shards.run(pacing.should_stop, pacing.after_turn, sleep=pacing.sleep)
    # 300 trades/s is far from a turn's cap: every turn is followed by the rest of the
    # default 100 ms (the fake clock stands still, so the rest is all of it).
    assert pacing.slept == {turn: 0.1 for turn in range(1, 31)}
    shards.close_all()


def test_a_backlog_is_read_without_pause():
    sim = SimulatorThread(SimulatorConfig.throughput("binance", rate=0, seed=3))  # as fast as we read
    try:
        symbols = sim.worker_env()["K2_BINANCE_SYMBOLS"].split(",")
        exchange, shards, handler, stats, out = build(sim, symbols=symbols, max_symbols=None)
        turn_until(shards, lambda: len(handler.trades) >= 10, "streaming")
        pacing = Pacing(turns=200, enough=lambda: len(handler.trades) >= 30_000)
        shards.run(pacing.should_stop, pacing.after_turn, sleep=pacing.sleep)
        # The simulator keeps the socket full: turns end at their trade cap or after a large
        # socket read, and the next one starts at once; a turn may still find the socket
        # drained and pause.
        assert len(handler.trades) >= 30_000
        assert len(pacing.slept) < pacing.turned / 2, (len(pacing.slept), pacing.turned)
        shards.close_all()
    finally:
        sim.stop()


def test_no_read_interval_never_pauses(sim):
    exchange, shards, handler, stats, out = build(sim, max_symbols=None, workers_read_interval_ms="0")
    pacing = Pacing(turns=20)
    shards.run(pacing.should_stop, pacing.after_turn, sleep=pacing.sleep)
    assert pacing.turned == 20 and pacing.slept == {}
    shards.close_all()
