"""Kraken: gaps in a symbol's sequential trade_id are detected, within a connection and
across a kill -9 (from the state file); with backfill disabled they are counted and
logged as lost (the REST backfill itself: test_kraken_backfill.py)."""

from __future__ import annotations

import io
import json

from k2 import contracts
from k2.config import load
from k2.log import EventLog
from workers.avro import TradeEncoder
from workers.dlq import DeadLetters
from workers.exchanges.kraken import Kraken
from workers.recovery import Recovery
from workers.run import FrameHandler
from workers.settings import WorkerSettings
from workers.stats import WorkerStats
from workers.symbols import SymbolTable

TOPIC = "market.crypto.trades.kraken"
DISABLED = "backfill disabled (K2_WORKERS_BACKFILL=false)"


def frame(symbol: str, *ids: int) -> bytes:
    items = ",".join(
        f'{{"symbol":"{symbol}","side":"buy","price":100.5,"qty":1,"ord_type":"limit","trade_id":{i},'
        f'"timestamp":"2026-01-01T00:00:00.{i % 1000:06d}Z"}}' for i in ids)
    return f'{{"channel":"trade","type":"update","data":[{items}]}}'.encode()


class FakeLink:
    endpoint = "ws://kraken"


class Worker:
    """The Kraken worker's frame path and recovery over a fake Kafka that acks at once."""

    def __init__(self, state_dir):
        self.out, self.stats = io.StringIO(), WorkerStats("kraken")
        log = EventLog(self.out)
        settings = load(WorkerSettings, {"K2_WORKERS_STATE_DIR": str(state_dir), "K2_WORKERS_BACKFILL": "false"})
        exchange = Kraken(["BTC/USD", "ETH/USD"], SymbolTable.shipped())
        dead_letters = DeadLetters("kraken", lambda k, v: None, log)
        self.recovery = Recovery(exchange, settings, TOPIC, lambda record: None, dead_letters, self.stats, log)
        self.handler = FrameHandler(exchange, TradeEncoder(contracts.trade_schema(), 1), self, TOPIC, dead_letters,
                                    self.stats, self.recovery.progress, max_frame_bytes=1 << 20, log=log)

    def produce(self, topic: str, key: bytes, value: bytes) -> None:
        self.recovery.on_acked(topic, key, value)

    def receive(self, *frames: bytes) -> None:
        for f in frames:
            self.handler(f, FakeLink())
        self.recovery.turn(0.0)

    def gaps(self) -> list[tuple]:
        events = [json.loads(line) for line in self.out.getvalue().splitlines()]
        return [(e["symbol"], e["from_id"], e["to_id"], e["cause"], e["lost"], e["reason"])
                for e in events if e["event"] == "backfill_failed"]


def test_a_jump_in_one_symbols_trade_ids_is_counted_and_logged_as_lost(tmp_path):
    worker = Worker(tmp_path)
    worker.receive(frame("BTC/USD", 100, 101), frame("ETH/USD", 7), frame("BTC/USD", 105, 106),
                   frame("ETH/USD", 8, 10))
    assert worker.gaps() == [("BTC/USD", 102, 104, "stream", 3, DISABLED),
                             ("ETH/USD", 9, 9, "stream", 1, DISABLED)]
    assert (worker.stats.gaps, worker.stats.backfill_lost, worker.stats.trades) == (2, 4, 7)


def test_snapshot_replays_after_a_resubscribe_open_no_gap(tmp_path):
    worker = Worker(tmp_path)
    worker.receive(frame("BTC/USD", 100, 101, 102), frame("BTC/USD", 101, 102).replace(b"update", b"snapshot"),
                   frame("BTC/USD", 103))
    assert worker.gaps() == [] and worker.stats.gaps == 0


def test_trades_missed_while_the_worker_was_dead_are_a_restart_gap(tmp_path):
    first = Worker(tmp_path)
    first.receive(frame("BTC/USD", 100, 101))
    first.recovery.save()  # what the periodic save had written before the kill
    restarted = Worker(tmp_path)
    restarted.receive(frame("BTC/USD", 110))
    assert restarted.gaps() == [("BTC/USD", 102, 109, "restart", 8, DISABLED)]
    assert restarted.stats.backfill_lost == 8
