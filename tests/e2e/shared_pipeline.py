"""One isolated pipeline shared by the end-to-end tier: started once, used by each market run.

Starting the streams costs three Spark start-ups and bootstrapping the tables a fourth,
a minute or two on 2 cores; the e2e test and the fault matrix each used to pay it. Now
they are *phases* on the same namespace, topics and streams: each phase runs its own
simulator (distinct seeds, so distinct trade ids) and its own workers (own log and
progress state), and records the trades it expects in Gold. Each phase then asserts
that Gold holds every trade it expects, exactly once, and nothing that no phase sent,
so one phase's loss never hides behind, or fails, the other.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from k2.log import parse_events
from k2.polling import wait_until
from k2ops.pipeline import IsolatedPipeline
from simulator_expectations import expected_trades, published_trades
from workers.simulator import SimulatorThread


class StreamKeeper(threading.Thread):
    """Restarts any stream whose process died, as the babysitter would (every 2 s)."""

    def __init__(self, pipe: IsolatedPipeline) -> None:
        super().__init__(daemon=True)
        self.pipe = pipe
        self.stopped = threading.Event()
        self.paused: set[str] = set()

    def run(self) -> None:
        while not self.stopped.wait(2):
            for stream, proc in list(self.pipe.streams.items()):
                if stream not in self.paused and proc.poll() is not None:
                    self.pipe.start_stream(stream)

    def stop(self) -> None:
        self.stopped.set()
        if self.is_alive():
            self.join(30)  # no restart may race the teardown's kills


@dataclass
class SharedPipeline:
    pipe: IsolatedPipeline
    keeper: StreamKeeper
    expected: dict[str, dict[str, dict]] = field(default_factory=dict)  # phase -> message_id -> trade
    tolerated: dict[str, set[str]] = field(default_factory=dict)  # phase -> ids Gold may or may not hold

    def expect(self, phase: str, trades: dict[str, dict], tolerated: set[str] = frozenset()) -> None:
        self.expected[phase] = trades
        self.tolerated[phase] = set(tolerated)

    def all_expected(self) -> set[str]:
        return {m for trades in self.expected.values() for m in trades}

    def all_known(self) -> set[str]:
        return self.all_expected().union(*self.tolerated.values())

    def gold_problems(self, phase: str, gold: list[dict]) -> dict[str, list]:
        """What is wrong with Gold from ``phase``'s point of view (empty lists: nothing)."""
        ids = Counter(r["message_id"] for r in gold)
        mine = self.expected[phase]
        return {
            "duplicated": sorted(m for m, n in ids.items() if n > 1),
            "missing": sorted((e["exchange"], e["symbol"], int(e["trade_id"]))
                              for m, e in mine.items() if m not in ids),
            "unexpected": sorted(m for m in ids if m not in self.all_known()),
        }


# -- the simulated market ---------------------------------------------------------------


def newest_trade_ids(sim: SimulatorThread) -> dict[tuple[str, str], int]:
    """(exchange, symbol) -> the id of the newest trade its market has published."""
    return sim.call(lambda: {(ex, symbol): archive[-1].trade_id for ex, tape in sim.sim.tapes.items()
                             for symbol, archive in tape.archive.items() if archive})


def wait_for_market(sim: SimulatorThread, trades: int, what: str, timeout: float) -> None:
    """Wait until each exchange's market has published ``trades`` more trades than now.

    The market runs with or without clients; a symbol's trade ids grow by one a trade, so
    this waits for a volume of trading rather than sleeping what it usually takes.
    """
    start = newest_trade_ids(sim)
    exchanges = {ex for ex, _ in start}

    def published() -> bool:
        now = newest_trade_ids(sim)
        grown = Counter()
        for key, first in start.items():
            grown[key[0]] += now[key] - first
        return all(grown[ex] >= trades for ex in exchanges)

    wait_until(published, timeout, f"{trades} more trades per exchange: {what}", interval=0.5)


# What each venue's workers must bring to Gold, restated per venue (not read from the
# worker modules). PUBLISHED: every trade the market published (gaps are backfilled
# over the simulator's REST history). SENT: every trade sent, which for Kraken is also
# complete, its subscribe snapshot covering a restart, provided its workers do not
# backfill from the simulator's REST, which the pipeline's simulator environment offers
# every venue (SENT_ONLY; empty means unset: the live default, which the worker refuses
# to mix with a local stream, backfill_unavailable). PUBLISHED_OR_REPORTED: Bybit has
# neither a snapshot nor a trade history, so what it publishes while no connection
# listens (a reconnect, a stall, a worker killed with -9 and what that process held
# unacknowledged) is lost; its workers report those times as possible-loss windows on
# the DLQ topic. Every trade the market published must be in Gold, or inside a reported
# window of its symbol (tolerated: Gold may or may not hold it, e.g. duplicates of an
# overlap); a trade missing outside every window is a silent loss.
PUBLISHED = ("binance", "coinbase", "okx")
SENT = ("kraken",)
PUBLISHED_OR_REPORTED = ("bybit",)
SENT_ONLY = {"K2_KRAKEN_REST_URL": ""}
POSSIBLE_LOSS = "possible_loss_window"  # the DLQ record kind, restated (workers/dlq.py)

Windows = dict[tuple[str, str], list[tuple[int, int]]]  # (EXCHANGE, symbol) -> [(from_us, to_us)], included


def market_trades(record: str, windows: Windows) -> tuple[dict[str, dict], set[str]]:
    """(message_id -> trade of every trade a phase's workers must bring to Gold, message
    ids that may be missing from Gold without a loss the venue could have avoided or a
    window that reports it)."""
    expected: dict[str, dict] = {}
    for exchange in PUBLISHED:
        expected.update({v["message_id"]: v for v in published_trades(record, exchange).values()})
    for exchange in SENT:
        expected.update({v["message_id"]: v for v in expected_trades(record, exchange).values()})
    tolerated: set[str] = set()
    for exchange in PUBLISHED_OR_REPORTED:
        for v in published_trades(record, exchange).values():
            inside = any(a <= v["timestamp"] <= b for a, b in windows.get((v["exchange"], v["symbol"]), ()))
            if inside:
                tolerated.add(v["message_id"])
            else:
                expected[v["message_id"]] = v
    return expected, tolerated


def possible_loss_windows(bootstrap: str, dlq_topic: str) -> Windows:
    """The possible-loss windows the workers reported on ``dlq_topic`` (read once the
    phase's workers have stopped: each window is produced before its worker exits)."""
    windows: Windows = {}
    for _, _, value in topic_values(bootstrap, dlq_topic):
        try:
            letter = json.loads(value or b"")
        except ValueError:
            continue
        if isinstance(letter, dict) and letter.get("error_kind") == POSSIBLE_LOSS:
            w = letter["possible_loss"]
            windows.setdefault((letter["exchange"].upper(), w["symbol"]), []).append((w["from_us"], w["to_us"]))
    return windows


# -- the workers of a phase, from their log -------------------------------------------


def worker_events(pipe: IsolatedPipeline) -> list[dict]:
    return parse_events(pipe.workers_log.read_text(errors="replace"))


def child_pid(pipe: IsolatedPipeline, exchange: str) -> int | None:
    started = [e for e in worker_events(pipe) if e.get("event") == "child_started" and e.get("child") == exchange]
    return started[-1]["pid"] if started else None


def connected_after(pipe: IsolatedPipeline, exchange: str, pid: int) -> bool:
    """The restarted child ``pid`` has connected (Binance subscribes by URL, Kraken by message)."""
    events = worker_events(pipe)
    starts = [i for i, e in enumerate(events) if e.get("event") == "child_started" and e.get("pid") == pid]
    return bool(starts) and any(e.get("event") == "connected" and e.get("exchange") == exchange
                                for e in events[starts[-1]:])


def wait_for_deliveries(pipe: IsolatedPipeline, exchange: str, timeout: float) -> None:
    """Wait until ``exchange``'s worker reports trades Kafka acknowledged: a worker killed
    before its first ack has no progress to resume from (a fresh deployment starts at "now")."""
    wait_until(lambda: any(e.get("event") == "stream_summary" and e.get("exchange") == exchange
                           and e.get("delivered", 0) > 0 for e in worker_events(pipe)),
               timeout, f"{exchange} deliveries")


def kill_worker(pipe: IsolatedPipeline, exchange: str) -> int:
    """kill -9 ``exchange``'s worker process, then wait until the supervisor's restart of it
    has connected again; returns the new process's pid."""
    killed = child_pid(pipe, exchange)
    assert killed, f"no {exchange} worker is running"
    os.kill(killed, signal.SIGKILL)
    restarted = wait_until(lambda: (p := child_pid(pipe, exchange)) != killed and p, 60, f"{exchange} restart")
    wait_until(lambda: connected_after(pipe, exchange, restarted), 60, f"{exchange} reconnected")
    return restarted


# -- what a topic holds, read from Kafka itself -------------------------------------------


def topic_values(bootstrap: str, topic: str) -> Iterator[tuple[int, int, bytes | None]]:
    """(partition, offset, value) of every record of ``topic``."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{uuid.uuid4()}",
                         "enable.auto.commit": False})
    try:
        for partition in sorted(consumer.list_topics(topic, timeout=30).topics[topic].partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
            consumer.assign([TopicPartition(topic, partition, low)])
            offset, deadline = low - 1, time.monotonic() + 120
            while offset < high - 1 and time.monotonic() < deadline:
                for msg in consumer.consume(1000, 5):
                    if msg.error():
                        continue
                    offset = msg.offset()
                    yield partition, offset, msg.value()
    finally:
        consumer.close()


def topic_trades(bootstrap: str, registry_url: str, topic: str) -> Iterator[tuple[int, int, dict | None]]:
    """(partition, offset, v3 record) of every record of ``topic``; the record is None
    for one that does not deserialize (the invalid records some tests write)."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    deserialize = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))
    for partition, offset, raw in topic_values(bootstrap, topic):
        try:
            value = deserialize(raw, SerializationContext(topic, MessageField.VALUE))
        except Exception:  # noqa: BLE001 - not a v3 record: reported as None
            value = None
        yield partition, offset, value
