"""Possible-loss windows through the real shard set, its connection manager and the in-process simulator
(Bybit's protocol on loopback, no Kafka): a make-before-break rotation reports nothing; a
silent stall the watchdog replaces reports one window per symbol, holding every trade the
market published meanwhile (compared with the simulator's record).

The manager's timers run on a fake clock the test moves; frames arrive in real time.
"""

from __future__ import annotations

import io
import json
import time

import pytest

from k2.config import load
from k2.log import EventLog
from k2.polling import wait_until
from simulator_expectations import published_trades
from tests.fake_clock import FakeClock
from workers.dlq import DeadLetters
from workers.exchanges.bybit import Bybit
from workers.loss_window import LossWindows
from workers.settings import WorkerSettings
from workers.shards import ShardSet
from workers.simulator import SimulatorConfig, SimulatorThread, read_record
from workers.stats import WorkerStats
from workers.symbols import SymbolTable


@pytest.fixture
def sim(tmp_path):
    s = SimulatorThread(SimulatorConfig(rate=200, seed=8, record=str(tmp_path / "record.jsonl")))
    yield s
    s.stop()


class Worker:
    """A Bybit shard set (one shard) with LossWindows wired as workers.run wires them."""

    def __init__(self, sim: SimulatorThread, tmp_path, **env: str):
        symbols = sim.worker_env()["K2_BYBIT_SYMBOLS"].split(",")
        self.settings = load(WorkerSettings, {"K2_BYBIT_URLS": sim.urls()["bybit"], "K2_WORKERS_STATE_DIR": str(tmp_path),
                                              **{f"K2_{k.upper()}": v for k, v in env.items()}})
        self.exchange = Bybit(symbols, SymbolTable.shipped())
        self.out, self.stats, self.dlq, self.trades = io.StringIO(), WorkerStats("bybit"), [], []
        dead = DeadLetters("bybit", lambda key, value: self.dlq.append(json.loads(value)), EventLog(self.out))
        dead.by_kind = self.stats.dead_letters
        self.windows = LossWindows(self.exchange, self.settings, "t", "d", dead, self.stats, EventLog(self.out))
        self.clock = FakeClock()
        self.shards = ShardSet(self.exchange, self.settings, self.handle, self.stats, EventLog(self.out),
                               clock=self.clock, observer=self.windows)
        assert len(self.shards.shards) == 1
        self.manager = self.shards.shards[0].manager

    def handle(self, frame: bytes, link) -> tuple:
        received = time.time_ns() // 1000
        parsed = self.exchange.parse(frame, received)
        self.windows.frame(link, received, parsed.trades, parsed.control)
        for t in parsed.trades:
            self.windows.seen(t["symbol"], t["trade_id"])
        self.trades.extend(parsed.trades)
        return len(parsed.trades), parsed.control

    def turn_until(self, condition, what: str, timeout: float = 15.0):
        def turned():
            self.shards.turn()
            self.windows.turn(0.0)
            return condition()

        return wait_until(turned, timeout, what, interval=0)

    def events(self, name: str) -> list[dict]:
        return [e for e in map(json.loads, self.out.getvalue().splitlines()) if e["event"] == name]

    def open_links(self) -> int:
        return sum(1 for link in self.manager.links if not link.closed)


def test_a_rotation_with_overlap_reports_no_window(sim, tmp_path):
    w = Worker(sim, tmp_path, workers_connection_lifetime_s="60", workers_rotation_overlap_s="5",
               workers_watchdog_s="1000")
    w.turn_until(lambda: len(w.trades) >= 50, "first trades")
    for rotation in (1, 2):
        w.clock.advance(60)  # the connection's lifetime
        w.turn_until(lambda r=rotation: w.stats.reconnects["rotation"] == r, f"successor {rotation} promoted")
        seen = len(w.trades)
        w.turn_until(lambda n=seen: len(w.trades) >= n + 50, "trades in the overlap")
        w.clock.advance(5)  # the overlap
        w.turn_until(lambda: w.open_links() == 1, "the old connection retired")
    seen = len(w.trades)
    w.turn_until(lambda: len(w.trades) >= seen + 50, "trades after the last rotation")
    w.shards.close_all()
    assert [e["reason"] for e in w.events("connection_closed")] == ["rotated", "rotated", "shutdown"]
    assert w.dlq == [] and w.stats.possible_loss_windows == 0 and w.events("coverage_interrupted") == []


def test_a_stall_replaced_by_the_watchdog_reports_every_trade_published_meanwhile(sim, tmp_path):
    w = Worker(sim, tmp_path, workers_watchdog_s="5", workers_loss_window_margin_ms="0")
    w.turn_until(lambda: len(w.trades) >= 50, "first trades")
    assert sim.call(sim.sim.stall, "bybit", 30.0) == 1  # no data; pings still answered
    tape = sim.sim.tapes["bybit"]

    def market_trades() -> int:
        return sim.call(lambda: sum(a[-1].trade_id for a in tape.archive.values() if a))

    before = market_trades()
    wait_until(lambda: market_trades() >= before + 30, 10, "the market trading on during the stall")
    w.clock.advance(6)  # past the watchdog
    w.turn_until(lambda: len(w.dlq) >= len(w.exchange.symbols), "a window per symbol after the watchdog's reconnect")
    seen = len(w.trades)
    w.turn_until(lambda: len(w.trades) >= seen + 50, "trades on the new connection")
    w.shards.close_all()
    sim.stop()

    assert [e["reason"] for e in w.events("connection_closed")][:1] == ["stall"]
    windows = {r["possible_loss"]["symbol"]: r["possible_loss"] for r in w.dlq}
    assert sorted(windows) == sorted(w.exchange.symbols) and len(w.dlq) == len(windows)
    assert {win["reason"] for win in windows.values()} == {"stall"}
    received = {(t["symbol"], t["trade_id"]) for t in w.trades}
    # Only up to each symbol's last trade received: what the market published after the
    # worker closed (before the simulator stopped) was never the stall's to lose.
    last_received = {}
    for t in w.trades:
        last_received[t["symbol"]] = max(last_received.get(t["symbol"], 0), t["timestamp"])
    published = published_trades(str(tmp_path / "record.jsonl"), "bybit")
    lost = {key: v for key, v in published.items()
            if key not in received and v["timestamp"] <= last_received.get(key[0], 0)}
    assert lost, "the stall hid nothing: the test exercised no loss"
    outside = [key for key, v in lost.items()
               if not windows[key[0]]["from_us"] <= v["timestamp"] <= windows[key[0]]["to_us"]]
    assert not outside, (outside[:5], windows)
    stalled = [e for e in read_record(str(tmp_path / "record.jsonl")) if e.get("kind") == "stall"]
    assert len(stalled) == 1
