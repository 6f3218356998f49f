"""Completeness end to end: trades the live streams leave out reach Gold through REST
backfill, the completeness ledger says every hour is complete, and the reconciliation
follows every record to Gold, until a Silver row is deleted by hand.

A market run on its own copy of the e2e tier's pipeline (tests/e2e/conftest.py: topics,
tables, three streams), with symbols of its own (SOLUSDT, SOL/USD). Marked
``integration``, not ``e2e``: `make test` runs it in a stack-tier group beside the
others rather than in the e2e tier's serial step.

- **live-stream gaps only:** both exchanges' WebSockets skip trades at random, REST
  serves them all;
- **Kraken kill -9 at speed:** at 40 trades/s the 50-trade snapshot Kraken sends on
  subscribe spans barely a second, less than a worker restart: what the snapshot no
  longer holds must come from REST, from the killed worker's acknowledged watermark;
- **history the exchange no longer serves** (a second market, ADAUSDT and ADA/USD):
  REST keeps only the last 200 trades, and the workers stay stopped for 15 s (600). The
  ledger calls exactly the ranges no client could have recovered (from the simulator's
  record: published, but neither sent on a connection nor listed by REST)
  ``unrecoverable``, and every other hour ``complete``.

Afterwards Gold holds every trade the market published, once each, and the ledger
(k2/ledger_store.py) has each hour of each symbol ``complete``, its counts adding up to
what was published and what came from REST. Then the reconciliation (``k2 reconcile``,
the ``data_quality`` DAG) finds nothing missing; a Silver row deleted by hand makes the
DAG fail, naming that record's partition, offset and message id.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyiceberg.expressions import EqualTo

from k2 import ledger_store
from k2.contracts import silver_table
from k2.polling import wait_until
from k2.settings import platform
from shared_pipeline import (
    SharedPipeline,
    kill_worker,
    topic_trades,
    wait_for_deliveries,
    wait_for_market,
    worker_events,
)
from simulator_expectations import published_trades, unserved_ranges
from workers.simulator import SimulatorConfig, SimulatorThread, read_record

pytestmark = pytest.mark.integration

PHASE = "completeness"
K2 = str(Path(sys.executable).parent / "k2")
SYMBOLS = {"binance": "SOLUSDT", "kraken": "SOL/USD"}


def _stop_dropping(cfg: SimulatorConfig) -> None:
    cfg.drop_rates.clear()  # the config is read at each trade


@pytest.fixture(scope="module")
def run(stack, shared: SharedPipeline):
    pipe = shared.pipe
    record = pipe.workdir / "simulator-completeness.jsonl"
    sim = SimulatorThread(SimulatorConfig(rate=40, seed=23, record=str(record),
                                          drop_rates={"binance": 0.02, "kraken": 0.02},
                                          symbols={ex: (symbol,) for ex, symbol in SYMBOLS.items()}))
    try:
        pipe.start_workers(sim.worker_env(), phase=PHASE, exchanges=SYMBOLS, K2_KRAKEN_REST_URL=f"http://127.0.0.1:{sim.port}",
                           K2_BINANCE_SYMBOLS=SYMBOLS["binance"], K2_KRAKEN_SYMBOLS=SYMBOLS["kraken"])
        wait_for_deliveries(pipe, "kraken", 90)
        kill_worker(pipe, "kraken")
        wait_for_market(sim, 400, "the market runs on; the restart's gap is filled meanwhile", 120)
        # The streams stop skipping trades: a trade skipped just before the market closes
        # would be revealed by no later trade, and REST closes with the market.
        sim.call(_stop_dropping, sim.sim.cfg)
        wait_for_market(sim, 80, "trades no stream skipped", 60)
        # What was published so far reaches Gold while REST is still there to serve it.
        published = {}
        for exchange in SYMBOLS:
            published.update({v["message_id"]: v for v in published_trades(str(record), exchange).values()})
        wait_until(lambda: set(published) <= set(pipe.gold().column("message_id").to_pylist()), 600,
                   "Gold to hold every trade published so far", interval=5)
        sim.stop()
        assert pipe.stop_workers() == 0
        expected = {}
        for exchange in SYMBOLS:
            expected.update({v["message_id"]: v for v in published_trades(str(record), exchange).values()})
        shared.expect(PHASE, expected)
        wait_until(lambda: set(expected) <= set(pipe.gold().column("message_id").to_pylist()), 600,
                   "Gold to hold every trade of this phase", interval=5)
        ledger_store.update(platform(), pipe.namespace, topic_prefix=pipe.prefix, log=lambda _: None)
        yield {"pipe": pipe, "expected": expected, "record": str(record), "shared": shared}
    finally:
        sim.stop()
        pipe.stop_workers()


def assert_gold_holds_exactly(shared: SharedPipeline, phase: str) -> None:
    problems = shared.gold_problems(phase, shared.pipe.gold().to_pylist())
    assert problems == {"duplicated": [], "missing": [], "unexpected": []}, {
        k: (len(v), v[:10]) for k, v in problems.items()}


def test_gold_holds_every_trade_the_market_published(run, shared: SharedPipeline):
    assert_gold_holds_exactly(shared, PHASE)


def test_the_faults_happened(run):
    """Guards the test itself: the streams left trades out, and the kill opened a gap
    wider than Kraken's snapshot, filled over REST."""
    dropped = Counter(e["exchange"] for e in read_record(run["record"]) if e.get("ev") == "dropped")
    assert dropped["binance"] > 0 and dropped["kraken"] > 0, dropped
    done = [e for e in worker_events(run["pipe"]) if e.get("event") == "backfill_done"]
    assert any(e.get("exchange") == "kraken" and e.get("cause") == "restart" and e.get("trades", 0) > 0
               for e in done), done


def test_ledger_says_every_hour_complete_and_counts_live_and_backfilled(run):
    rows = catalog_rows(run["pipe"].namespace)
    dropped = Counter(e["exchange"] for e in read_record(run["record"]) if e.get("ev") == "dropped")
    for exchange, symbol in SYMBOLS.items():
        mine = [r for r in rows if (r["exchange"], r["symbol"]) == (exchange, symbol)]
        published = sum(1 for e in run["expected"].values() if e["symbol"] == symbol)
        assert mine and {r["status"] for r in mine} == {"complete"}, mine
        assert sum(r["missing_ids"] for r in mine) == 0
        assert sum(r["gold_trades"] for r in mine) == published
        assert sum(r["live_trades"] + r["backfill_trades"] for r in mine) == published
        # Binance resends nothing: each dropped trade came over REST. Kraken's snapshot
        # after the restart may carry some again, but the kill's gap came over REST.
        backfilled = sum(r["backfill_trades"] for r in mine)
        assert backfilled >= dropped[exchange] if exchange == "binance" else backfilled > 0


LOST_PHASE = "history-gone"
LOST_SYMBOLS = {"binance": "ADAUSDT", "kraken": "ADA/USD"}


def _pause(cfg: SimulatorConfig, paused: bool) -> None:
    object.__setattr__(cfg, "paused", paused)


def _sent(record: str) -> set[tuple[str, str]]:
    """(exchange, trade id) of every trade the simulator sent to a connection."""
    return {(e["exchange"], e["trade_id"]) for e in read_record(record) if e.get("ev") == "trade"}


def _in_kafka(stack, pipe, symbols: dict[str, str]) -> set[tuple[str, str]]:
    """(exchange, trade id) of the trades of ``symbols`` (exchange -> symbol) in the topics."""
    found = set()
    for exchange, symbol in symbols.items():
        for _, _, value in topic_trades(stack.kafka_bootstrap, stack.registry_url, pipe.topics[exchange]):
            if value is not None and value["symbol"] == symbol:
                found.add((exchange, value["trade_id"]))
    return found


@pytest.fixture(scope="module")
def lost_run(stack, shared: SharedPipeline):
    """Workers stopped for longer than REST's history lasts, then started again: their
    backfill from the saved watermark finds the oldest missing trades gone."""
    pipe = shared.pipe
    record = pipe.workdir / "simulator-history-gone.jsonl"
    sim = SimulatorThread(SimulatorConfig(rate=40, seed=31, record=str(record), rest_history=200,
                                          symbols={ex: (symbol,) for ex, symbol in LOST_SYMBOLS.items()}))
    env = {"K2_KRAKEN_REST_URL": f"http://127.0.0.1:{sim.port}", "K2_BINANCE_SYMBOLS": LOST_SYMBOLS["binance"],
           "K2_KRAKEN_SYMBOLS": LOST_SYMBOLS["kraken"], "K2_WORKERS_SUMMARY_INTERVAL_S": "2"}

    def backfilled() -> set[str]:
        return {e.get("exchange") for e in worker_events(pipe) if e.get("event") == "backfill_done"}

    try:
        pipe.start_workers(sim.worker_env(), phase=LOST_PHASE, exchanges=LOST_SYMBOLS, **env)
        wait_until(lambda: {e.get("exchange") for e in worker_events(pipe)
                            if e.get("event") == "stream_summary" and e.get("delivered", 0) > 0} >= set(LOST_SYMBOLS),
                   90, "both workers to deliver trades")
        # The market holds still while the workers stop, and every trade sent so far reaches
        # Kafka first: a trade written to a socket that its client closes unread is not one
        # any client could have recovered, yet the record would count it as sent.
        sim.call(_pause, sim.sim.cfg, True)
        wait_until(lambda: _sent(str(record)) <= _in_kafka(stack, pipe, LOST_SYMBOLS), 120,
                   "every trade sent before the stop to reach Kafka", interval=2)
        assert pipe.stop_workers() == 0  # watermarks saved
        sim.call(_pause, sim.sim.cfg, False)
        assert not backfilled()  # a first run has no watermark to backfill from
        # One symbol per exchange: 600 trades each, so REST's last 200 no longer reach back to the watermark.
        wait_for_market(sim, 600, "history beyond what REST serves", 120)
        pipe.start_workers(sim.worker_env(), phase=LOST_PHASE, exchanges=LOST_SYMBOLS, **env)
        wait_until(lambda: backfilled() >= set(LOST_SYMBOLS), 90, "both workers' backfill after the restart")
        wait_for_market(sim, 120, "live trades after the backfill", 60)
        sim.stop()
        assert pipe.stop_workers() == 0
        lost = {exchange: unserved_ranges(str(record), exchange).get(symbol, [])
                for exchange, symbol in LOST_SYMBOLS.items()}
        expected = {}
        for exchange in LOST_SYMBOLS:
            expected.update({v["message_id"]: v for (_, tid), v in published_trades(str(record), exchange).items()
                             if not any(a <= int(tid) <= b for a, b in lost[exchange])})
        shared.expect(LOST_PHASE, expected)
        try:
            wait_until(lambda: set(expected) <= set(pipe.gold().column("message_id").to_pylist()), 300,
                       "Gold to hold every trade a client could recover", interval=5)
        except TimeoutError:
            pass  # the test names what is missing
        ledger_store.update(platform(), pipe.namespace, topic_prefix=pipe.prefix, log=lambda _: None)
        yield {"pipe": pipe, "lost": lost, "record": str(record)}
    finally:
        sim.stop()
        pipe.stop_workers()


def test_ledger_reports_exactly_the_ranges_the_exchange_no_longer_serves(lost_run, shared: SharedPipeline):
    assert all(lost_run["lost"].values()), ("the test needs a loss on both exchanges", lost_run["lost"])
    assert_gold_holds_exactly(shared, LOST_PHASE)
    rows = catalog_rows(lost_run["pipe"].namespace)
    for exchange, symbol in LOST_SYMBOLS.items():
        mine = [r for r in rows if (r["exchange"], r["symbol"]) == (exchange, symbol)]
        reported = sorted((m["first_id"], m["last_id"]) for r in mine for m in r["missing_ranges"] or ())
        assert reported == lost_run["lost"][exchange], (exchange, reported, lost_run["lost"][exchange])
        assert {r["status"] for r in mine if r["missing_ranges"]} == {"unrecoverable"}, mine
        assert {r["status"] for r in mine if not r["missing_ranges"]} <= {"complete"}, mine
    from k2 import unrecoverable
    from k2.catalog import catalog

    kept = catalog(platform()).load_table(unrecoverable.identifier(lost_run["pipe"].namespace)).scan().to_arrow().to_pylist()
    for exchange, symbol in LOST_SYMBOLS.items():
        ids = {i for r in kept if (r["exchange"], r["symbol"]) == (exchange, symbol)
               for i in range(r["first_id"], r["last_id"] + 1)}
        assert ids == {i for a, b in lost_run["lost"][exchange] for i in range(a, b + 1)}, exchange


def catalog_rows(namespace: str) -> list[dict]:
    from k2.catalog import catalog

    return catalog(platform()).load_table(ledger_store.identifier(namespace)).scan().to_arrow().to_pylist()


def _kafka_locations(stack, topic: str) -> dict[str, list[tuple[int, int]]]:
    """message_id -> every (partition, offset) of ``topic`` carrying it, read from Kafka itself."""
    found: dict[str, list[tuple[int, int]]] = {}
    for partition, offset, value in topic_trades(stack.kafka_bootstrap, stack.registry_url, topic):
        if value is not None:
            found.setdefault(value["message_id"], []).append((partition, offset))
    return found


def test_reconciliation_finds_nothing_missing_then_names_a_silver_row_deleted_by_hand(run, stack, airflow_cli):
    # Last in the module: it deletes a Silver row of this pipeline.
    pipe = run["pipe"]
    window = {"start": "2020-01-01T00:00", "end": datetime.now(UTC).isoformat()}
    where = ["--namespace", pipe.namespace, "--topic-prefix", pipe.prefix]
    clean = subprocess.run([K2, "reconcile", *where, "--start", window["start"], "--end", window["end"]],
                           capture_output=True, text=True, timeout=300)
    assert clean.returncode == 0, clean.stdout[-3000:] + clean.stderr[-3000:]
    assert clean.stdout.splitlines()[0].endswith(", 0 missing, 0 in flight (not checked yet)"), clean.stdout[:500]

    _records_behind_a_stopped_stream_are_in_flight_not_missing(run["shared"], stack, where)

    # A trade Kafka holds exactly once and Silver once, its coordinates read from Kafka.
    topic = pipe.topics["binance"]
    located = _kafka_locations(stack, topic)
    silver = pipe.table(silver_table("binance"))
    in_silver = Counter(silver.scan(selected_fields=("message_id",)).to_arrow().column("message_id").to_pylist())
    message_id = next(m for m, places in sorted(located.items()) if len(places) == 1 and in_silver[m] == 1)
    ((partition, offset),) = located[message_id]
    silver.delete(EqualTo("message_id", message_id))

    result = airflow_cli("dags", "test", "data_quality", "-c",
                         json.dumps({**window, "namespace": pipe.namespace, "topic_prefix": pipe.prefix}),
                         timeout=600)
    output = result.stdout + result.stderr
    assert "state=failed" in output and "RECONCILIATION: 1 record(s) missing" in output, output[-4000:]
    assert (f"{topic}[{partition}] offsets" in output
            and f"MISSING in silver (nor silver_dlq): 1 record(s), e.g. offset {offset} message_id {message_id}"
            in output), output[-4000:]


def _replay(bootstrap: str, topic: str, count: int, partition: int | None = None) -> tuple[int, int]:
    """Produce again the first ``count`` records of ``partition`` of ``topic`` (default: the
    first that holds as many), byte for byte (a duplicate delivery: Gold still holds each
    trade once); returns (partition, the offset after them)."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "replay", "enable.auto.commit": False})
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=30).topics[topic].partitions)
        marks = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30) for p in partitions}
        if partition is None:
            partition = next(p for p, (low, high) in marks.items() if high - low >= count)
        low = marks[partition][0]
        consumer.assign([TopicPartition(topic, partition, low)])
        records = [m for m in consumer.consume(count, 30) if not m.error()]
    finally:
        consumer.close()
    assert len(records) == count, f"read {len(records)} of {topic}[{partition}]'s first {count} records"
    offsets: list[int] = []
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for m in records:
        producer.produce(topic, m.value(), m.key(), partition=partition,
                         on_delivery=lambda err, msg: offsets.append(-1 if err else msg.offset()))
    assert producer.flush(30) == 0 and len(offsets) == count and min(offsets) >= 0, offsets
    return partition, max(offsets) + 1


def _records_behind_a_stopped_stream_are_in_flight_not_missing(shared: SharedPipeline, stack, where: list[str]) -> None:
    """After an outage the streams catch up for a while; a reconciliation run meanwhile must
    count what they have not reached as in flight, not as lost (their checkpoints say how
    far they committed). Silver is stopped, 3 records reach Bronze only; then Bronze is
    stopped and 2 more reach Kafka only (all in one partition)."""
    from k2.checkpoint import committed_offsets, kafka_positions
    from k2.contracts import STREAMS
    from k2.streams import checkpoint_dir

    bronze, silver, _ = STREAMS
    pipe = shared.pipe
    topic = pipe.topics["binance"]
    shared.keeper.paused |= {bronze, silver}
    try:
        pipe.kill_stream(silver)
        partition, end = _replay(stack.kafka_bootstrap, topic, 3)
        wait_until(lambda: kafka_positions(committed_offsets(checkpoint_dir(bronze, pipe.settings)) or []).get(
            (topic, partition), 0) >= end, 120, "Bronze to commit the 3 replayed records", interval=1)
        pipe.kill_stream(bronze)
        _replay(stack.kafka_bootstrap, topic, 2, partition)
        behind = subprocess.run([K2, "reconcile", *where, "--start", "2020-01-01T00:00", "--end", "now"],
                                capture_output=True, text=True, timeout=300,
                                env={**os.environ, "K2_CHECKPOINT_ROOT": pipe.settings.checkpoint_root})
        out = behind.stdout + behind.stderr
        assert behind.returncode == 3, out[-3000:]
        assert behind.stdout.splitlines()[0].endswith(", 0 missing, 5 in flight (not checked yet)"), out[-3000:]
        assert f"{topic}[{partition}] offsets " in out and f"2 not yet read by {bronze}, 3 not yet read by {silver}: ok" in out, \
            out[-3000:]
    finally:
        shared.keeper.paused -= {bronze, silver}  # the keeper starts them again
