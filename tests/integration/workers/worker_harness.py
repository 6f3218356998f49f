"""Harness for worker integration tests: real Kafka + registry, in-thread simulator,
worker as a real subprocess, topics unique per test.

Expectations are built here from the simulator's record with independent code
(uuid.uuid5, Decimal, datetime), never with the worker's normalization functions.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException
from confluent_kafka.admin import NewTopic

from k2 import contracts
from k2.exchanges import names
from k2.kafka_admin import admin_client
from k2.log import parse_events
from k2.polling import wait_until
from k2.settings import platform
from simulator_expectations import (  # noqa: F401
    DLQ_KIND,
    NAMESPACE,
    PAIRS,
    bad_frames,
    expected_trades,
    published_trades,
    recorded_simulators,
)
from workers.simulator import SimulatorThread, read_record

with warnings.catch_warnings():
    import authlib.deprecate  # noqa: F401  (installs its own "always" warning filter)

    warnings.simplefilter("ignore")
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

REPO = Path(__file__).resolve().parents[3]
# Restated per venue (not read from the worker modules): an application ping (sped up
# here), a REST trade history to backfill gaps from, and one vendor_data field each
# record must carry, as (field, value) for the trade's taker side.
PINGING_VENUES = ("kraken", "bybit", "okx")
BACKFILLING_VENUES = ("binance", "kraken", "coinbase", "okx")
VENDOR_DATA: dict[str, Callable[[str], tuple[str, str]]] = {
    "binance": lambda side: ("buyer_is_maker", "true" if side == "SELL" else "false"),
    "kraken": lambda side: ("ord_type", "market"),
    "coinbase": lambda side: ("maker_side", "sell" if side == "BUY" else "buy"),  # the wire's side is the maker's
    "bybit": lambda side: ("block_trade", "false"),
    "okx": lambda side: ("order_source", "0"),
}


@pytest.fixture(scope="session")
def stack() -> dict:
    plat = platform()
    admin = admin_client(plat.kafka_bootstrap)
    try:
        admin.list_topics(timeout=5)
    except KafkaException as exc:
        pytest.fail(f"Kafka at {plat.kafka_bootstrap} unreachable ({exc}); start it: `k2 stack up`")
    registry = SchemaRegistryClient({"url": plat.registry_url})
    try:
        registry.get_subjects()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"registry at {plat.registry_url} unreachable ({exc}); start it: `k2 stack up`")
    return {"bootstrap": plat.kafka_bootstrap, "registry_url": plat.registry_url, "admin": admin, "registry": registry}


@pytest.fixture
def topics(stack) -> Iterator[dict]:
    prefix = f"it-{uuid.uuid4().hex[:8]}."
    trade_topics = {name: prefix + contracts.trade_topic(name) for name in names()}
    topic_names = {**trade_topics, "dlq": prefix + contracts.DLQ_TOPIC}
    futures = stack["admin"].create_topics(
        [NewTopic(t, 3, 1) for t in trade_topics.values()] + [NewTopic(topic_names["dlq"], 1, 1)])
    for f in futures.values():
        f.result(30)
    yield {"prefix": prefix, **topic_names}
    for f in stack["admin"].delete_topics(list(topic_names.values())).values():
        try:
            f.result(30)
        except KafkaException:
            pass
    for topic in trade_topics.values():
        for permanent in (False, True):
            try:
                stack["registry"].delete_subject(f"{topic}-value", permanent=permanent)
            except Exception:  # noqa: BLE001 - subject absent when no worker ran for it
                pass


@pytest.fixture
def make_simulator(tmp_path) -> Iterator[Callable[..., SimulatorThread]]:
    with recorded_simulators(tmp_path) as make:
        yield make


@dataclass
class WorkerProcess:
    proc: subprocess.Popen
    log_path: Path

    def events(self, event: str | None = None) -> list[dict]:
        """The process's log events, only those named ``event`` when given."""
        events = parse_events(self.log_path.read_text())
        return events if event is None else [e for e in events if e.get("event") == event]

    def kill_child(self, timeout_s: float) -> None:
        """kill -9 the only worker this supervisor runs; wait until it has started the next."""
        (first,) = [e["pid"] for e in self.events("child_started")]
        os.kill(first, signal.SIGKILL)  # mid-flow: whatever it held unacknowledged dies with it
        wait_until(lambda: len(self.events("child_started")) == 2, timeout_s, "supervisor to restart the killed worker")
        assert self.events("child_exited")[0]["reason"] == "killed by SIGKILL"

    def stop(self, timeout_s: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout_s)


def record_events(sim: SimulatorThread, ev: str, exchange: str) -> list[dict]:
    """The lines of kind ``ev`` (conn_open, dropped, rest, ...) of the simulator's record for ``exchange``."""
    return [e for e in read_record(sim.record_path) if e.get("ev") == ev and e.get("exchange") == exchange]


def worker_env(sim: SimulatorThread, topics: dict, **settings: str) -> dict[str, str]:
    """Every venue's worker pointed at ``sim``: its WebSocket and REST (backfill), the
    symbols it serves, no metrics port, fast timers, topics private to the test."""
    venue_prefixes = tuple(f"K2_{name.upper()}_" for name in names())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("K2_WORKERS_", *venue_prefixes))}
    env.update(sim.worker_env())
    env.update({f"K2_{name.upper()}_METRICS_PORT": "0" for name in names()})
    env.update({f"K2_WORKERS_{name.upper()}_PING_INTERVAL_S": "1" for name in PINGING_VENUES})
    env.update({
        "K2_WORKERS_REFRESH_SYMBOLS": "false", "K2_WORKERS_TOPIC_PREFIX": topics["prefix"],
        "K2_WORKERS_WATCHDOG_S": "2", "K2_WORKERS_BACKOFF_BASE_S": "0.1", "K2_WORKERS_BACKOFF_CAP_S": "1",
        "K2_WORKERS_LINGER_MS": "5", "K2_WORKERS_SUMMARY_INTERVAL_S": "2", "PYTHONUNBUFFERED": "1",
        # Progress files private to this test.
        "K2_WORKERS_STATE_DIR": str(Path(sim.record_path).parent / "worker-state"),
    })
    env.update({f"K2_{k.upper()}": str(v) for k, v in settings.items()})
    return env


@pytest.fixture
def start_worker(tmp_path) -> Iterator[Callable[..., WorkerProcess]]:
    running: list[WorkerProcess] = []

    def start(exchange: str, env: dict[str, str], supervised: bool = False) -> WorkerProcess:
        """One worker process (``supervised``: `k2 workers` restarting it, as in production)."""
        log_path = tmp_path / f"{exchange}-{len(running)}.log"
        cmd = ([sys.executable, "-m", "k2ops.cli", "workers", "--exchange", exchange] if supervised
               else [sys.executable, "-m", "workers.run", exchange])
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stderr=open(log_path, "w"), stdout=subprocess.DEVNULL)  # noqa: SIM115
        worker = WorkerProcess(proc, log_path)
        running.append(worker)
        wait_until(lambda: any(e.get("event") == "connected" for e in worker.events()) or proc.poll() is not None,
                   30, f"{exchange} worker to connect")
        assert proc.poll() is None, f"worker exited early:\n{log_path.read_text()[-3000:]}"
        return worker

    yield start
    for worker in running:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait()
        # pytest shows a teardown's stderr only for a failed test: the worker's own account
        # of gaps, probes and backfills is then in the report (CI keeps no tmp_path).
        events = [e for e in worker.events() if e.get("event") not in ("stream_summary", "subscribed")]
        print(f"--- {worker.log_path.name}: {len(events)} events (stream_summary left out), the last 80:",
              *(json.dumps(e, separators=(",", ":"))[:400] for e in events[-80:]), sep="\n", file=sys.stderr)


# Kafka -----------------------------------------------------------------------------


class TopicReader:
    """Reads a fresh topic from the beginning, accumulating every message."""

    def __init__(self, stack: dict, topic: str, avro: bool = True):
        self.topic = topic
        self.consumer = Consumer({
            "bootstrap.servers": stack["bootstrap"], "group.id": f"it-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest", "enable.auto.commit": False,
        })
        self.consumer.subscribe([topic])
        self.deserialize = AvroDeserializer(stack["registry"]) if avro else None
        self.messages: list[dict] = []

    def poll(self, seconds: float = 0.5) -> list[dict]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for msg in self.consumer.consume(1000, 0.2):
                if msg.error():
                    raise AssertionError(f"consume error on {self.topic}: {msg.error()}")
                raw = msg.value()
                value = (self.deserialize(raw, SerializationContext(self.topic, MessageField.VALUE))
                         if self.deserialize else json.loads(raw))
                self.messages.append({"key": msg.key(), "value": value, "raw": raw})
        return self.messages

    def close(self) -> None:
        self.consumer.close()


# expectations from the simulator's record ------------------------------------------


def assert_trades_match(messages: list[dict], expected: dict[tuple[str, str], dict], exchange: str) -> None:
    """Kafka holds exactly the sent trades (no more, no fewer), field by field; duplicates
    carry the same message_id."""
    seen: dict[tuple[str, str], set[str]] = {}
    for m in messages:
        v = m["value"]
        key = (v["symbol"], v["trade_id"])
        assert key in expected, f"Kafka has a trade the simulator never sent: {v}"
        exp = expected[key]
        actual = {k: v[k] for k in exp}
        assert actual == exp, f"{key}: got {actual}, expected {exp}"
        assert m["key"] == v["symbol"].encode()
        assert v["price"].as_tuple().exponent == -8 and v["quantity"].as_tuple().exponent == -8
        assert 0 <= v["ingestion_timestamp"] - v["timestamp"] < 60_000_000
        field, value = VENDOR_DATA[exchange](exp["side"])
        assert v["vendor_data"][field] == value, (key, v["vendor_data"])
        seen.setdefault(key, set()).add(v["message_id"])
    missing = sorted(set(expected) - set(seen))
    assert not missing, f"{len(missing)} sent trades missing from Kafka, e.g. {missing[:5]}"
    assert all(len(ids) == 1 for ids in seen.values())


def assert_contiguous(messages: list[dict]) -> None:
    """Per symbol, the trade ids in Kafka form an unbroken range: no gap on the tape."""
    ids: dict[str, set[int]] = {}
    for m in messages:
        ids.setdefault(m["value"]["symbol"], set()).add(int(m["value"]["trade_id"]))
    for symbol, got in ids.items():
        gaps = sorted(set(range(min(got), max(got) + 1)) - got)
        assert not gaps, f"{symbol}: {len(gaps)} trade ids missing between {min(got)} and {max(got)}: {gaps[:10]}"


def assert_topic_holds(reader: TopicReader, expected: dict[tuple[str, str], dict], exchange: str,
                       timeout_s: float = 30, contiguous: bool = True) -> list[dict]:
    """Once every expected trade has landed: the topic holds exactly ``expected``, field by
    field, with no gap in any symbol's trade ids (``contiguous``). Returns the topic's messages."""
    messages = wait_until_landed(reader, expected, timeout_s=timeout_s)
    assert_trades_match(messages, expected, exchange)
    if contiguous:
        assert_contiguous(messages)
    return messages


def wait_for_more(reader: TopicReader, trades: int, what: str, timeout_s: float = 30) -> None:
    """Wait until ``trades`` more messages than now are in the reader's topic: the stream
    flows on (a condition to wait for, not a fixed sleep)."""
    landed = len(reader.poll(0.3))
    wait_until(lambda: len(reader.poll(0.3)) >= landed + trades, timeout_s, f"{trades} more trades: {what}")


def wait_caught_up(worker: WorkerProcess, timeout_s: float = 60) -> None:
    """Wait until a summary the worker logs from now on says it is filling no gap and
    awaiting no reconnect probe (``backfill_pending`` 0): everything it knows it missed has
    been handed to Kafka, so the venue's REST history may go away."""
    seen = len(worker.events("stream_summary"))

    def caught_up() -> bool:
        fresh = worker.events("stream_summary")[seen:]
        return bool(fresh) and fresh[-1]["backfill_pending"] == 0

    wait_until(caught_up, timeout_s, "the worker's gaps filled and probes settled", interval=0.5)


def wait_until_landed(reader: TopicReader, expected: dict, timeout_s: float = 30) -> list[dict]:
    def landed() -> bool:
        got = {(m["value"]["symbol"], m["value"]["trade_id"]) for m in reader.poll(0.5)}
        return set(expected) <= got

    try:
        wait_until(landed, timeout_s, f"{len(expected)} trades in {reader.topic}", interval=0.1)
    except TimeoutError:
        pass  # the detailed comparison below says what is missing
    reader.poll(1.0)  # anything still in flight (extra or duplicate) shows up too
    return reader.messages
