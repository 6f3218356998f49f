"""Connection lifecycle against the in-process simulator on loopback (no Kafka)."""

from __future__ import annotations

import json
import random
import socket
import time

import pytest

from k2.config import load
from k2.log import EventLog
from workers.binance import Binance
from workers.connection import BufferedReceive, ConnectionManager
from workers.kraken import Kraken
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


def run_for(manager: ConnectionManager, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    manager.run(lambda: time.monotonic() > deadline, lambda: None)


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


def test_failover_to_the_next_endpoint_then_rotation_without_gap(sim, capsys):
    dead = f"ws://127.0.0.1:{free_port()}"
    s = settings(binance_urls=f"{dead},{sim.urls()['binance']}", workers_connection_lifetime_s="0.8",
                 workers_rotation_overlap_s="0.2", workers_backoff_base_s="0.05", workers_backoff_cap_s="0.1")
    exchange = Binance(["BTCUSDT", "ETHUSDT"], SymbolTable.shipped())
    handler, stats = Collect(exchange), WorkerStats("binance")
    manager = ConnectionManager(exchange, s, handler, stats, EventLog(), rng=random.Random(1))
    run_for(manager, 3.0)
    manager.close_all()
    events = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    failed = [e for e in events if e["event"] == "connect_failed"]
    assert failed and failed[0]["endpoint"] == dead and failed[0]["next_endpoint"] == sim.urls()["binance"]
    assert stats.reconnects["rotation"] >= 2
    assert len(handler.trades) > 200
    assert contiguous(handler.trades)
    assert any(e["event"] == "connection_closed" and e["reason"] == "rotated" for e in events)


def test_kraken_subscribes_acks_and_sends_application_pings(sim, capsys):
    s = settings(kraken_urls=sim.urls()["kraken"], workers_kraken_ping_interval_s="0.3")
    exchange = Kraken(["BTC/USD", "ETH/USD"], SymbolTable.shipped())
    handler, stats = Collect(exchange), WorkerStats("kraken")
    manager = ConnectionManager(exchange, s, handler, stats, EventLog())
    time.sleep(0.5)  # let the tape build some history for the snapshot
    run_for(manager, 1.5)
    manager.close_all()
    events = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert sorted(e["detail"] for e in events if e["event"] == "subscribed") == ["trade BTC/USD", "trade ETH/USD"]
    assert any(e["event"] == "exchange_status" and e["system"] == "online" for e in events)
    snapshot = [t for t in handler.trades if t["vendor_data"]["type"] == "snapshot"]
    assert snapshot and contiguous(handler.trades)
    assert handler.controls.count("pong") >= 3  # our pings every 0.3 s were answered
    assert handler.controls.count("heartbeat") >= 1
    assert stats.errors == {}


def test_rejected_subscription_is_reported_and_the_rest_keeps_flowing(sim, capsys):
    s = settings(kraken_urls=sim.urls()["kraken"])
    exchange = Kraken(["BTC/USD", "SOL/USD"], SymbolTable.shipped())  # the simulator lists no SOL/USD
    handler, stats = Collect(exchange), WorkerStats("kraken")
    manager = ConnectionManager(exchange, s, handler, stats, EventLog())
    run_for(manager, 1.0)
    manager.close_all()
    events = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    (rejected,) = [e for e in events if e["event"] == "subscribe_error"]
    assert rejected["level"] == "error"
    assert rejected["detail"] == "subscribe SOL/USD rejected: Currency pair not supported SOL/USD"
    assert stats.errors["subscribe_error"] == 1
    assert handler.trades and {t["symbol"] for t in handler.trades} == {"BTC/USD"}


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
