"""Possible-loss windows in one worker process (workers.loss_window): DLQ records, counters,
log lines, and the covered-until file that carries a window across kill -9."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import pytest

from k2.config import load
from k2.exchanges import VENUES
from k2.log import EventLog
from workers.base import Control
from workers.dlq import DeadLetters
from workers.exchanges import exchange_class
from workers.exchanges.bybit import Bybit
from workers.loss_window import LossWindows, needs_loss_windows, state_path
from workers.metrics import WorkerCollector
from workers.settings import WorkerSettings
from workers.stats import WorkerStats
from workers.symbols import SymbolTable

TOPIC, DLQ = "t.trades.bybit", "t.dlq"
SECOND = 1_000_000
T0 = 1_767_225_600 * SECOND  # 2026-01-01T00:00:00Z


@dataclass(eq=False)
class FakeLink:
    """What LossWindows reads of a connection (workers.connection.Link)."""

    id: int
    endpoint: str


class Worker:
    """A LossWindows wired as workers.run wires it, with the DLQ kept in a list."""

    def __init__(self, tmp_path, margin_ms: int = 1000):
        self.settings = load(WorkerSettings, {"K2_WORKERS_STATE_DIR": str(tmp_path),
                                              "K2_WORKERS_LOSS_WINDOW_MARGIN_MS": str(margin_ms)})
        self.exchange = Bybit(["BTCUSDT", "ETHUSDT"], SymbolTable.shipped())
        self.out, self.stats, self.dlq = io.StringIO(), WorkerStats("bybit"), []
        dead = DeadLetters("bybit", lambda key, value: self.dlq.append(value), EventLog(self.out))
        dead.by_kind = self.stats.dead_letters
        self.windows = LossWindows(self.exchange, self.settings, TOPIC, DLQ, dead, self.stats, EventLog(self.out))
        self.next_id = 1000
        self.produced: list[tuple[str, bytes, bytes]] = []
        self.links: dict[int, FakeLink] = {}

    def connect(self, n: int) -> None:
        """Connection ``n`` opens and sends its subscribe requests (as the shard set does)."""
        self.links[n] = FakeLink(n, "ws://venue")
        self.windows.subscribing(self.links[n], self.exchange.symbols, len(self.exchange.subscribe_messages()))

    def close(self, n: int, reason: str) -> None:
        self.windows.closed(self.links[n], reason)

    def ack(self, n: int, at_us: int) -> None:
        self.windows.frame(self.links[n], at_us, [], Control("ack", "trade-1"))

    def trade(self, n: int, symbol: str, at_us: int, published_us: int | None = None) -> None:
        self.windows.frame(self.links[n], at_us, [{"timestamp": at_us if published_us is None else published_us}],
                           None)
        self.next_id += 1
        self.windows.seen(symbol, str(self.next_id))
        self.produced.append((TOPIC, symbol.encode(), _value(str(self.next_id))))

    def ack_all_trades(self) -> None:
        for topic, key, value in self.produced:
            self.windows.on_acked(topic, key, value)
        self.produced.clear()

    def records(self) -> list[dict]:
        return [json.loads(v) for v in self.dlq]

    def events(self, name: str) -> list[dict]:
        return [e for e in map(json.loads, self.out.getvalue().splitlines()) if e["event"] == name]


def _value(trade_id: str) -> bytes:
    """An Avro body as far as trade_id_of reads it: wire header, message_id, trade_id."""

    def text(s: str) -> bytes:
        return bytes([len(s) * 2]) + s.encode()  # zig-zag varint of a short length

    return b"\x00\x00\x00\x00\x01" + text("m" * 36) + text(trade_id)


def test_the_rule_follows_the_venue_attributes_not_its_name():
    rule = {v.name: needs_loss_windows(exchange_class(v.name)) for v in VENUES}
    assert rule == {v.name: not exchange_class(v.name).sequential_ids and not exchange_class(v.name).backfills
                    for v in VENUES}
    assert rule["bybit"] and not rule["binance"]


def test_a_disconnect_is_one_record_per_symbol_counted_and_logged(tmp_path):
    w = Worker(tmp_path)
    w.connect(1)
    w.ack(1, T0)
    w.ack(1, T0)  # (one request per 10 symbols; a second ack changes nothing)
    w.trade(1, "BTCUSDT", T0 + 2 * SECOND)
    w.close(1, "connection_error")
    assert w.events("coverage_interrupted")[0]["symbols"] == 2
    w.connect(2)
    w.ack(2, T0 + 3 * SECOND)
    w.windows.turn(0.0)
    records = w.records()
    assert [(r["error_kind"], r["raw"], r["possible_loss"]) for r in records] == [
        ("possible_loss_window", "", {"symbol": "BTCUSDT", "from_us": T0 + 1 * SECOND, "to_us": T0 + 4 * SECOND,
                                      "reason": "connection_error"}),
        ("possible_loss_window", "", {"symbol": "ETHUSDT", "from_us": T0 + 1 * SECOND, "to_us": T0 + 4 * SECOND,
                                      "reason": "connection_error"}),
    ]  # ETHUSDT never traded: covered until the link's last data all the same
    assert records[0]["endpoint"] == "ws://venue" and records[0]["received_at_us"] == T0 + 3 * SECOND
    assert (w.stats.possible_loss_windows, w.stats.possible_loss_seconds) == (2, 6.0)
    assert w.stats.dead_letters["possible_loss_window"] == 2
    lines = w.events("possible_loss_window")
    assert [(e["symbol"], e["seconds"], e["uncovered_from"]) for e in lines] == [
        ("BTCUSDT", 3.0, "2026-01-01T00:00:02.000Z"), ("ETHUSDT", 3.0, "2026-01-01T00:00:02.000Z")]
    w.windows.turn(0.0)
    assert len(w.dlq) == 2  # reported once
    metrics = {m.name: m.samples for m in WorkerCollector(w.stats).collect()}
    assert metrics["k2_worker_possible_loss_windows"][0].value == 2
    assert metrics["k2_worker_possible_loss_seconds"][0].value == 6.0


def test_after_kill_9_the_next_process_reports_from_the_last_trade_kafka_held(tmp_path):
    w = Worker(tmp_path, margin_ms=0)
    w.connect(1)
    w.ack(1, T0)
    w.trade(1, "BTCUSDT", T0 + 1 * SECOND)
    w.ack_all_trades()
    w.trade(1, "BTCUSDT", T0 + 2 * SECOND)  # in flight when the process dies
    w.trade(1, "ETHUSDT", T0 + 3 * SECOND)
    w.windows.turn(0.0)  # the periodic save, then kill -9: nothing else runs
    saved = json.loads(state_path(w.settings, "bybit").read_text())
    assert saved["covered_until"] == {"BTCUSDT": T0 + 2 * SECOND - 1, "ETHUSDT": T0 + 3 * SECOND - 1}
    assert (saved["exchange"], saved["topic"]) == ("bybit", TOPIC)

    again = Worker(tmp_path, margin_ms=0)
    assert again.events("coverage_resumed")[0]["symbols"] == 2
    again.connect(1)
    again.trade(1, "ETHUSDT", T0 + 9 * SECOND)  # confirms ETHUSDT before the ack
    again.ack(1, T0 + 9 * SECOND + 5)
    again.windows.turn(0.0)
    assert [(r["possible_loss"]["symbol"], r["possible_loss"]["from_us"], r["possible_loss"]["to_us"],
             r["possible_loss"]["reason"]) for r in again.records()] == [
        ("ETHUSDT", T0 + 3 * SECOND - 1, T0 + 9 * SECOND, "restart"),
        ("BTCUSDT", T0 + 2 * SECOND - 1, T0 + 9 * SECOND + 5, "restart"),
    ]


@pytest.mark.parametrize(("received_s", "published_s", "from_s"), [
    (5, 3, 3),  # 2 s in queues on the way: what was published after it and lost may be that old
    (6, 9, 6),  # the venue's clock runs ahead: capped at the receive time
])
def test_coverage_ends_at_the_venue_time_of_the_last_trade_received(tmp_path, received_s, published_s, from_s):
    w = Worker(tmp_path, margin_ms=0)
    w.connect(1)
    w.ack(1, T0)
    w.trade(1, "BTCUSDT", T0 + received_s * SECOND, published_us=T0 + published_s * SECOND)
    w.ack_all_trades()
    w.close(1, "connection_error")
    w.connect(2)
    w.ack(2, T0 + 10 * SECOND)
    w.windows.turn(0.0)
    assert {(r["possible_loss"]["from_us"], r["possible_loss"]["to_us"]) for r in w.records()} == {
        (T0 + from_s * SECOND, T0 + 10 * SECOND)}


def test_the_saved_time_waits_for_the_window_record_itself(tmp_path):
    w = Worker(tmp_path, margin_ms=0)
    w.connect(1)
    w.ack(1, T0)
    w.close(1, "stall")
    w.connect(2)
    w.ack(2, T0 + 5 * SECOND)
    w.trade(2, "BTCUSDT", T0 + 6 * SECOND)
    w.ack_all_trades()
    w.windows.turn(0.0)
    assert len(w.dlq) == 2
    # The records are not acknowledged yet: a kill now must not lose the windows.
    assert w.windows.marks() == {"BTCUSDT": T0, "ETHUSDT": T0}
    for value in w.dlq:
        w.windows.on_acked(DLQ, b"bybit", value)
    assert w.windows.marks() == {"BTCUSDT": T0 + 6 * SECOND, "ETHUSDT": T0 + 6 * SECOND}


def test_a_clean_stop_saves_the_last_data_and_the_next_start_reports_the_downtime(tmp_path):
    w = Worker(tmp_path, margin_ms=0)
    w.connect(1)
    w.ack(1, T0)
    w.trade(1, "BTCUSDT", T0 + 1 * SECOND)
    w.close(1, "shutdown")
    assert w.events("coverage_interrupted") == []  # a stop is not an incident; the next start reports it
    w.ack_all_trades()  # the final flush
    w.windows.save()
    again = Worker(tmp_path, margin_ms=0)
    again.connect(1)
    again.ack(1, T0 + 60 * SECOND)
    again.windows.turn(0.0)
    assert {(r["possible_loss"]["symbol"], r["possible_loss"]["from_us"]) for r in again.records()} == {
        ("BTCUSDT", T0 + 1 * SECOND), ("ETHUSDT", T0 + 1 * SECOND)}


@pytest.mark.parametrize("content", ["not json", '{"version": 1, "covered_until": []}'])
def test_an_unreadable_state_file_starts_without_a_restart_window(tmp_path, content):
    path = state_path(load(WorkerSettings, {"K2_WORKERS_STATE_DIR": str(tmp_path)}), "bybit")
    path.parent.mkdir(parents=True)
    path.write_text(content)
    w = Worker(tmp_path)
    w.connect(1)
    w.ack(1, T0)
    w.windows.turn(0.0)
    assert w.dlq == [] and w.events("progress_state_unreadable")
