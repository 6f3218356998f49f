"""End to end: simulator → workers → Kafka → bronze → silver (+ DLQ) → gold.

The real workers (under their supervisor) and the real three Spark streams run against
the real stack on an isolated namespace, topics and checkpoints, shared with the fault
matrix (tests/e2e/shared_pipeline.py says how the two stay apart). The simulator sends
trades (with duplicates and malformed frames) and records exactly what it sent; the
test also writes invalid records straight to Kafka. Afterwards:

- Gold holds every trade the simulator sent, field by field, once each, and nothing
  that no phase sent;
- the workers' DLQ topic holds exactly the malformed frames, by kind;
- ``silver_dlq`` holds exactly the invalid records, each with its reason.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from k2.contracts import trade_schema_text
from k2.exchanges import names
from k2.polling import wait_until
from shared_pipeline import (
    POSSIBLE_LOSS,
    SENT_ONLY,
    SharedPipeline,
    market_trades,
    possible_loss_windows,
    wait_for_market,
)
from simulator_expectations import DLQ_KIND, bad_frames
from workers.simulator import SimulatorConfig, SimulatorThread

pytestmark = pytest.mark.e2e

TRADE_SECONDS = 40
RATE = 6  # trades/s per exchange: the 30/s of two venues, spread over five
PHASE = "e2e"  # this module's market run on the tier's shared pipeline (tests/e2e/conftest.py)


def _valid(**changes) -> dict:
    """A v3 record that passes every Silver rule, with ``changes`` applied."""
    now_us = int(time.time() * 1_000_000)
    record = {
        "message_id": str(uuid.uuid4()), "trade_id": "x", "symbol": "BTCUSDT",
        "exchange": "BINANCE", "timestamp": now_us - 1_000_000,
        "price": Decimal("100.00000000"), "quantity": Decimal("1.00000000"),
        "base_asset": "BTC", "quote_currency": "USDT", "side": "BUY",
        "ingestion_timestamp": now_us, "vendor_data": {},
    }
    record.update(changes)
    return record


def _invalid_records(serialize, schema_id: int) -> dict[str, bytes]:
    """error_type Silver must give -> the Kafka value that deserves it (binance topic)."""
    future = int((datetime.now(UTC) + timedelta(days=1)).timestamp() * 1_000_000)
    header = b"\x00" + schema_id.to_bytes(4, "big")
    return {
        "truncated_frame": b"\x00\x01",
        "bad_magic_byte": b"\x07" + serialize(_valid(trade_id="bad-magic"))[1:],
        "unknown_schema_id": b"\x00" + (2**31 - 7).to_bytes(4, "big") + b"\x02\x04",
        "decode_error": header + b"\xff\xff\xff\xff",
        "non_positive_price": serialize(_valid(trade_id="bad-price", price=Decimal("-1.00000000"))),
        "non_positive_quantity": serialize(_valid(trade_id="bad-qty", quantity=Decimal("0E-8"))),
        "future_timestamp": serialize(_valid(trade_id="bad-time", timestamp=future)),
        "exchange_topic_mismatch": serialize(_valid(trade_id="bad-exch", exchange="KRAKEN")),
        "symbol_mismatch": serialize(_valid(trade_id="bad-sym", base_asset="ETH")),
    }


@pytest.fixture(scope="module")
def run(stack, shared: SharedPipeline):
    pipe = shared.pipe
    record = pipe.workdir / "simulator-e2e.jsonl"
    sim = SimulatorThread(SimulatorConfig(rate=RATE, malformed_rate=0.03, duplicate_rate=0.05,
                                          seed=11, record=str(record)))
    try:
        pipe.start_workers(sim.worker_env(), phase=PHASE, **SENT_ONLY)

        # Invalid records straight into the binance topic, as a buggy producer would.
        registry = SchemaRegistryClient({"url": stack.registry_url})
        topic = pipe.topics["binance"]
        serializer = AvroSerializer(registry, trade_schema_text())
        ctx = SerializationContext(topic, MessageField.VALUE)
        serialize = lambda rec: serializer(rec, ctx)  # noqa: E731
        schema_id = int.from_bytes(serialize(_valid())[1:5], "big")
        invalid = _invalid_records(serialize, schema_id)
        producer = Producer({"bootstrap.servers": stack.kafka_bootstrap})
        for error_type, value in invalid.items():
            producer.produce(topic, key=error_type.encode(), value=value)
        assert producer.flush(30) == 0

        # The market runs (nothing is asserted on timing): TRADE_SECONDS of trading at RATE.
        wait_for_market(sim, TRADE_SECONDS * RATE, "the market's run", TRADE_SECONDS * 4 + 60)
        sim.stop()
        assert pipe.stop_workers() == 0

        expected, tolerated = market_trades(str(record), possible_loss_windows(stack.kafka_bootstrap, pipe.dlq_topic))
        shared.expect(PHASE, expected, tolerated)
        wait_until(lambda: set(expected) <= set(pipe.gold().column("message_id").to_pylist()), 600,
                   "Gold to hold every trade of this phase", interval=5)
        wait_until(lambda: pipe.silver_dlq().num_rows >= len(invalid), 300, "silver_dlq", interval=5)
        yield {"pipe": pipe, "expected": expected, "invalid": invalid, "record": str(record)}
    finally:
        sim.stop()
        pipe.stop_workers()


def test_gold_holds_exactly_the_trades_sent(run, shared: SharedPipeline):
    gold = run["pipe"].gold().to_pylist()
    problems = shared.gold_problems(PHASE, gold)
    assert problems == {"duplicated": [], "missing": [], "unexpected": []}, {
        k: (len(v), v[:10]) for k, v in problems.items()}
    expected = run["expected"]
    for row in gold:
        exp = expected.get(row["message_id"])
        if exp is None:
            continue  # another phase's trade (checked by that phase)
        ts = row["timestamp"]
        assert int(ts.timestamp()) * 1_000_000 + ts.microsecond == exp["timestamp"]
        assert {k: row[k] for k in ("trade_id", "symbol", "exchange", "price", "quantity",
                                    "base_asset", "quote_currency", "side")} == {
            k: exp[k] for k in ("trade_id", "symbol", "exchange", "price", "quantity",
                                "base_asset", "quote_currency", "side")}
        assert row["exchange_date"] == ts.date() and row["exchange_hour"] == ts.hour


def test_simulator_really_sent_duplicates_and_bad_frames(run):
    """Guards the test itself: the faults it relies on happened."""
    from workers.simulator import read_record

    events = read_record(run["record"])
    trades = [e for e in events if e.get("ev") == "trade"]
    assert len(trades) > len({(e["exchange"], e["symbol"], e["trade_id"]) for e in trades})
    assert any(e.get("ev") == "bad_frame" for e in events)


def test_silver_dlq_holds_exactly_the_invalid_records(run):
    rows = run["pipe"].silver_dlq().to_pylist()
    by_value = {bytes(r["value"]): r for r in rows}
    assert len(rows) == len(run["invalid"])
    for error_type, value in run["invalid"].items():
        assert value in by_value, f"{error_type} record missing from silver_dlq"
        row = by_value[value]
        assert row["error_type"] == error_type
        assert row["error_message"]


def test_worker_dlq_topic_holds_exactly_the_malformed_frames(run, stack):
    expected = Counter()
    for exchange in names():
        expected.update((exchange, DLQ_KIND[f["kind"]]) for f in bad_frames(run["record"], exchange))
    consumer = Consumer({"bootstrap.servers": stack.kafka_bootstrap, "group.id": f"e2e-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([run["pipe"].dlq_topic])
    got: Counter = Counter()
    deadline = time.monotonic() + 60
    while sum(got.values()) < sum(expected.values()) and time.monotonic() < deadline:
        for msg in consumer.consume(500, 1.0):
            if not msg.error():
                record = json.loads(msg.value())
                if record["error_kind"] != POSSIBLE_LOSS:  # times a worker was not listening, not frames:
                    got[(record["exchange"], record["error_kind"])] += 1  # test_gold_holds_exactly_the_trades_sent
    consumer.close()
    assert got == expected
