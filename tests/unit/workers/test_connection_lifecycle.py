"""Connection lifecycle against the in-process simulator on loopback (no Kafka).

The manager's timers (backoff, rotation, overlap, pings) run on a fake clock the test
moves; trades arrive from the simulator in real time and are waited for by condition.
"""

from __future__ import annotations

import io
import json
import random
import socket
from collections.abc import Callable

import pytest

from k2.config import load
from k2.log import EventLog
from k2.polling import wait_until
from tests.fake_clock import FakeClock
from workers.connection import BufferedReceive, ConnectionManager
from workers.exchanges.binance import Binance
from workers.exchanges.kraken import Kraken
from workers.settings import WorkerSettings
from workers.simulator import SimulatorConfig, SimulatorThread
from workers.simulator.server import ws_text_frame
from workers.stats import WorkerStats
from workers.symbols import SymbolTable


class Collect:
    """A frame handler that parses and keeps the trades (what run.FrameHandler would produce)."""

    def __init__(self, exchange):
        self.exchange = exchange
        self.trades: list[dict] = []
        self.controls: list[str] = []

    def __call__(self, frame, link):
        parsed = self.exchange.parse(frame, 0)
        self.trades.extend(parsed.trades)
        if parsed.control:
            self.controls.append(parsed.control.kind)
        return len(parsed.trades), parsed.control


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def turn_until(manager: ConnectionManager, condition: Callable[[], object], what: str, timeout: float = 10.0):
    """Turn the manager (reading what the simulator sends) until ``condition()`` holds.

    The manager's timers run on the test's fake clock, which only the test moves; the
    timeout only bounds a broken run (data from the simulator arrives in real time).
    """

    def turned() -> object:
        manager.turn()
        return condition()

    return wait_until(turned, timeout, what, interval=0)


@pytest.fixture
def sim():
    s = SimulatorThread(SimulatorConfig(rate=200, seed=4))
    yield s
    s.stop()


def settings(**env: str) -> WorkerSettings:
    return load(WorkerSettings, {f"K2_{k.upper()}": v for k, v in env.items()})


def contiguous(trades: list[dict]) -> bool:
    by_symbol: dict[str, set[int]] = {}
    for t in trades:
        by_symbol.setdefault(t["symbol"], set()).add(int(t["trade_id"]))
    return all(len(ids) == max(ids) - min(ids) + 1 for ids in by_symbol.values())


def events_of(out: io.StringIO, name: str) -> list[dict]:
    return [e for e in map(json.loads, out.getvalue().splitlines()) if e["event"] == name]


def open_links(manager: ConnectionManager) -> int:
    return sum(1 for link in manager.links if not link.closed)


def test_failover_to_the_next_endpoint_then_rotation_without_gap(sim):
    dead, live = f"ws://127.0.0.1:{free_port()}", sim.urls()["binance"]
    s = settings(binance_urls=f"{dead},{live}", workers_connection_lifetime_s="60",
                 workers_rotation_overlap_s="5", workers_backoff_base_s="1", workers_backoff_cap_s="1",
                 workers_watchdog_s="1000")
    exchange = Binance(["BTCUSDT", "ETHUSDT"], SymbolTable.shipped())
    handler, stats, out, clock = Collect(exchange), WorkerStats("binance"), io.StringIO(), FakeClock()
    manager = ConnectionManager(exchange, s, handler, stats, EventLog(out), clock=clock, rng=random.Random(1))
    manager.turn()  # the dead endpoint refuses
    (failed,) = events_of(out, "connect_failed")
    assert (failed["endpoint"], failed["next_endpoint"]) == (dead, live) and failed["retry_in_s"] <= 1
    clock.advance(1)  # the backoff (at most its 1 s base) has passed
    turn_until(manager, lambda: len(handler.trades) >= 50, "trades from the live endpoint")
    for rotation in (1, 2):
        clock.advance(60)  # the connection's lifetime
        turn_until(manager, lambda r=rotation: stats.reconnects["rotation"] == r, f"successor {rotation} promoted")
        assert open_links(manager) == 2  # make-before-break: the old one still reads
        seen = len(handler.trades)
        turn_until(manager, lambda n=seen: len(handler.trades) >= n + 50, "trades in the overlap")
        clock.advance(5)  # the overlap
        turn_until(manager, lambda: open_links(manager) == 1, "the old connection retired")
    seen = len(handler.trades)
    turn_until(manager, lambda: len(handler.trades) >= seen + 50, "trades after the last rotation")
    manager.close_all()
    assert stats.reconnects == {"rotation": 2}
    assert [e["reason"] for e in events_of(out, "connection_closed")] == ["rotated", "rotated", "shutdown"]
    assert len(handler.trades) >= 200  # 50 before, in and after each rotation
    assert contiguous(handler.trades)


def test_kraken_subscribes_acks_and_sends_application_pings(sim):
    s = settings(kraken_urls=sim.urls()["kraken"], workers_kraken_ping_interval_s="10")
    exchange = Kraken(["BTC/USD", "ETH/USD"], SymbolTable.shipped())
    handler, stats, out, clock = Collect(exchange), WorkerStats("kraken"), io.StringIO(), FakeClock()
    manager = ConnectionManager(exchange, s, handler, stats, EventLog(out), clock=clock)
    tape = sim.sim.tapes["kraken"]
    wait_until(lambda: sim.call(lambda: min(len(h) for h in tape.history.values())) >= 10, 10,
               "some history on the tape for the subscribe snapshot", interval=0.01)
    turn_until(manager, lambda: len(events_of(out, "subscribed")) == 2, "both subscriptions acknowledged")
    turn_until(manager, lambda: any(t["vendor_data"]["type"] == "snapshot" for t in handler.trades), "the snapshot")
    for pings in (1, 2, 3):
        clock.advance(10)  # one ping interval
        turn_until(manager, lambda n=pings: handler.controls.count("pong") == n, f"pong {pings}")
    turn_until(manager, lambda: handler.controls.count("heartbeat") >= 1, "the simulator's heartbeat")
    manager.close_all()
    assert sorted(e["detail"] for e in events_of(out, "subscribed")) == ["trade BTC/USD", "trade ETH/USD"]
    assert any(e["system"] == "online" for e in events_of(out, "exchange_status"))
    assert contiguous(handler.trades)
    assert handler.controls.count("pong") == 3  # one answer to each ping, none sent unasked
    assert stats.errors == {}


def test_rejected_subscription_is_reported_and_the_rest_keeps_flowing(sim):
    s = settings(kraken_urls=sim.urls()["kraken"])
    exchange = Kraken(["BTC/USD", "SOL/USD"], SymbolTable.shipped())  # the simulator lists no SOL/USD
    handler, stats, out = Collect(exchange), WorkerStats("kraken"), io.StringIO()
    manager = ConnectionManager(exchange, s, handler, stats, EventLog(out), clock=FakeClock())
    turn_until(manager, lambda: events_of(out, "subscribe_error") and len(handler.trades) >= 50,
               "the rejection and trades of the other symbol")
    manager.close_all()
    (rejected,) = events_of(out, "subscribe_error")
    assert rejected["level"] == "error"
    assert rejected["detail"] == "subscribe SOL/USD rejected: Currency pair not supported SOL/USD"
    assert stats.errors["subscribe_error"] == 1
    assert {t["symbol"] for t in handler.trades} == {"BTC/USD"}


def test_backoff_grows_with_jitter_and_is_capped():
    s = settings(workers_backoff_base_s="0.5", workers_backoff_cap_s="4")
    manager = ConnectionManager(Binance(["BTCUSDT"], SymbolTable.shipped()), s, lambda f, k: (0, None),
                                WorkerStats("binance"), EventLog(), rng=random.Random(3))
    assert manager.backoff_delay(0) == 0.0
    for failures, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        delays = [manager.backoff_delay(failures) for _ in range(200)]
        assert ceiling * 0.5 <= min(delays) and max(delays) <= ceiling
        assert len(set(delays)) > 100  # jittered, not lock-step


class FakeWs:
    def __init__(self, chunks):
        self.chunks = list(chunks)

    def _recv(self, size):
        return self.chunks.pop(0)


def test_fast_frame_path_slices_whole_frames_and_defers_the_rest():
    small, medium = b'{"a":1}', b"x" * 300
    ping = b"\x89\x00"
    data = ws_text_frame(small) + ws_text_frame(medium) + ping + ws_text_frame(small)[:3]
    reader = BufferedReceive(FakeWs([data]))
    assert reader.recv(0) == b""  # fill the buffer
    assert reader.next_data_frame() == small
    assert reader.next_data_frame() == medium
    assert reader.next_data_frame() is None  # control frame: websocket-client's job
    assert reader.recv(2) == ping
    assert reader.next_data_frame() is None  # partial frame
    assert reader.buffered() == 3
