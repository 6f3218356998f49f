"""Bronze -> Silver + DLQ -> Gold on the real local stack, with known good and bad records.

One pipeline run per module (spark-submit costs ~15 s each): phase 1 drains a known
dataset with Trigger.AvailableNow and checks every table against the test's own
inputs; phase 2 produces the same trades again plus a larger batch, kills each
stream with SIGKILL mid-flow, restarts it, and checks nothing is lost or doubled.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pyiceberg.table.snapshots import Operation

from k2.catalog import catalog
from k2.contracts import BRONZE_TABLE, GOLD_TABLE, SILVER_DLQ_TABLE, silver_table, trade_schema
from k2.log import events_named
from k2.polling import wait_until
from k2.settings import platform
from k2.streams import hold_run_lock, lock_holder, stop_stream

from .jobs import Jobs
from .trades import HOUR_US, PAIRS, Sent, TradeProducer, frame, hour_start_us, trade

pytestmark = pytest.mark.integration
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def rows(jobs: Jobs, table: str) -> list[dict]:
    return catalog(platform()).load_table(f"{jobs.namespace}.{table}").scan().to_arrow().to_pylist()


def as_silver(record: dict) -> dict:
    """The Silver row a v3 record must become (timestamps µs -> UTC datetimes)."""
    out = dict(record)
    out["timestamp"] = EPOCH + timedelta(microseconds=record["timestamp"])
    out["ingestion_timestamp"] = EPOCH + timedelta(microseconds=record["ingestion_timestamp"])
    out["exchange_date"] = out["timestamp"].date()
    return out


def normalized(row: dict) -> dict:
    row = dict(row)
    row["vendor_data"] = dict(row["vendor_data"])
    return row


def evolved_schema() -> str:
    """v3 plus an appended Exchange symbol: a BACKWARD-compatible new writer schema id."""
    schema = trade_schema()
    for f in schema["fields"]:
        if f["name"] == "exchange":
            f["type"]["symbols"] = [*f["type"]["symbols"], "K2TESTEX"]
    return json.dumps(schema)


@pytest.fixture(scope="module")
def producer() -> TradeProducer:
    return TradeProducer(platform().kafka_bootstrap, platform().registry_url)


@pytest.fixture(scope="module")
def dataset(jobs: Jobs, producer: TradeProducer) -> list[Sent]:
    """Phase 1: bootstrap, produce the known records, drain all three streams once."""
    jobs.run("bootstrap_tables")
    producer.create_topics(list(jobs.topics.values()))
    b, k = jobs.topics["binance"], jobs.topics["kraken"]
    h2, now_us = hour_start_us(2), int(time.time() * 1_000_000)
    sent: list[Sent] = []
    for ex, topic in jobs.topics.items():  # 6 valid trades per exchange over two hours
        sent += [producer.valid(topic, trade(ex, n, h2 + (n % 2) * HOUR_US + n * 1000)) for n in range(6)]
    good_body = producer.encode(b, trade("binance", 99, h2))
    good_id = int.from_bytes(good_body[1:5], "big")
    bad = [
        Sent(b, b"x", producer.encode(b, trade("binance", 50, h2, price=Decimal(0))), "non_positive_price"),
        Sent(k, b"x", producer.encode(k, trade("kraken", 51, h2, quantity=Decimal("-0.5"))),
             "non_positive_quantity"),
        Sent(b, b"x", producer.encode(b, trade("binance", 52, now_us + 3600 * 1_000_000)), "future_timestamp"),
        Sent(b, b"x", b"\x01" + good_body[1:], "bad_magic_byte"),
        Sent(k, b"x", frame(2_000_000_000, good_body[5:]), "unknown_schema_id"),
        Sent(b, b"x", frame(good_id, b"\xff" * 12), "decode_error"),
        Sent(b, b"x", producer.encode(b, trade("kraken", 53, h2)), "exchange_topic_mismatch"),
        Sent(b, b"x", producer.encode(b, trade("binance", 54, h2, symbol="BTCUSD")), "symbol_mismatch"),
        Sent(k, b"x", producer.encode(k, trade("kraken", 55, h2, message_id="")), "missing_field"),
        Sent(k, b"x", b"\x00\x00", "truncated_frame"),
    ]
    sent += bad
    producer.send_all(sent)

    # A second writer schema appears mid-stream: its rows must decode with their own id.
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    evolved = AvroSerializer(producer.registry, evolved_schema(), conf={"auto.register.schemas": True})
    late = trade("kraken", 60, h2 + 5000)
    value = evolved(late, SerializationContext(k, MessageField.VALUE))
    assert int.from_bytes(value[1:5], "big") != good_id, "registry reused the id for a new schema"
    late_sent = Sent(k, late["symbol"].encode(), value, "valid", late)
    producer.send_all([late_sent])
    sent.append(late_sent)

    for job in ("bronze_ingestion", "silver_transformation", "gold_aggregation"):
        jobs.run(job, "--trigger", "availableNow")
    return sent


def test_bronze_holds_every_byte(jobs: Jobs, dataset: list[Sent]):
    bronze = rows(jobs, BRONZE_TABLE)
    assert Counter((r["topic"], r["value"]) for r in bronze) == Counter((s.topic, s.value) for s in dataset)
    assert len({(r["topic"], r["partition"], r["offset"]) for r in bronze}) == len(dataset)
    assert all(r["ingestion_date"] == r["ingestion_timestamp"].date() for r in bronze)
    # A batch is one data file, not one per Kafka partition it read (the venues' topics
    # have three each): bronze_ingestion coalesces it before the write.
    table = catalog(platform()).load_table(f"{jobs.namespace}.{BRONZE_TABLE}")
    added = [snap.summary["added-data-files"] for snap in table.snapshots() if snap.summary.operation == Operation.APPEND]
    assert added and set(added) == {"1"}, added


@pytest.mark.parametrize("exchange", sorted(PAIRS))
def test_silver_holds_exactly_the_valid_trades(jobs: Jobs, dataset: list[Sent], exchange: str):
    expected = [as_silver(s.record) for s in dataset if s.expect == "valid" and s.topic == jobs.topics[exchange]]
    actual = [normalized(r) for r in rows(jobs, silver_table(exchange))]
    key = lambda r: r["message_id"]  # noqa: E731
    assert sorted(actual, key=key) == sorted(expected, key=key)


def test_dlq_holds_each_invalid_record_with_its_reason(jobs: Jobs, dataset: list[Sent]):
    dlq = rows(jobs, SILVER_DLQ_TABLE)
    assert Counter((r["topic"], r["value"], r["error_type"]) for r in dlq) == Counter(
        (s.topic, s.value, s.expect) for s in dataset if s.expect != "valid")
    assert all(r["error_message"] for r in dlq)


def test_gold_is_the_deduplicated_union(jobs: Jobs, dataset: list[Sent]):
    gold = rows(jobs, GOLD_TABLE)
    expected = {s.record["message_id"]: as_silver(s.record) for s in dataset if s.expect == "valid"}
    ids = [r["message_id"] for r in gold]
    assert len(ids) == len(set(ids)) == len(expected)
    for r in gold:
        want = expected[r["message_id"]]
        assert r["timestamp"] == want["timestamp"] and r["price"] == want["price"]
        assert r["exchange_date"] == want["exchange_date"]
        assert r["exchange_hour"] == want["timestamp"].hour


def test_progress_published_for_every_stream(jobs: Jobs, dataset: list[Sent]):
    for stream in ("bronze_ingestion", "silver_transformation", "gold_aggregation"):
        p = jobs.progress(stream)
        assert p is not None and p["stream"] == stream and p["batch_id"] >= 0
    assert jobs.progress("bronze_ingestion")["source_lag"] == 0


def test_second_copy_refuses_to_start(jobs: Jobs, dataset: list[Sent]):
    settings = jobs.settings
    lock = hold_run_lock("bronze_ingestion", settings)  # stands in for a running copy
    try:
        out = jobs.run("bronze_ingestion", "--trigger", "availableNow", check=False, timeout=120)
    finally:
        lock.close()
    refused = events_named(out, "not_started")
    assert len(refused) == 1 and "already running" in refused[0]["reason"], out[-3000:]
    assert events_named(out, "query_started") == []


def test_graceful_stop_ends_the_stream_with_exit_0(jobs: Jobs, dataset: list[Sent]):
    """`k2 streams stop` (SIGTERM): the stream stops between batches and exits 0, so an
    Airflow runner task ends as a success instead of being retried."""
    settings = jobs.settings
    proc = jobs.start("bronze_ingestion", "--trigger", "1 second")
    wait_until(lambda: lock_holder("bronze_ingestion", settings)
               and events_named(Path(proc.log_path).read_text(), "query_started"), 180, "bronze's query to start")
    assert stop_stream("bronze_ingestion", settings, timeout_s=30, graceful_s=120) is True
    assert proc.wait(30) == 0
    assert len(events_named(Path(proc.log_path).read_text(), "stopped_cleanly")) == 1


def test_kill9_mid_flow_and_late_duplicates(jobs: Jobs, producer: TradeProducer, dataset: list[Sent]):
    """Replay the phase-1 trades plus 600 new ones per venue; SIGKILL each stream mid-flow
    (after two batches of at most 150 rows), then let a new copy finish."""
    h3 = hour_start_us(3)
    again = [Sent(s.topic, s.key, s.value, s.expect, s.record) for s in dataset]  # same bytes, new offsets
    fresh = [producer.valid(t, trade(ex, n, h3 + (n % 3) * HOUR_US + n))
             for ex, t in jobs.topics.items() for n in range(1000, 1600)]
    producer.send_all(again + fresh)
    everything = dataset + again + fresh

    plans = {
        "bronze_ingestion": ["--max-offsets-per-trigger", "150"],
        "silver_transformation": ["--max-rows-per-batch", "150"],
        "gold_aggregation": ["--max-rows-per-batch", "150"],
    }
    for stream, limits in plans.items():
        before = jobs.committed_batches(stream)
        proc = jobs.start(stream, "--trigger", "1 second", *limits)
        wait_until(lambda s=stream, b=before: jobs.committed_batches(s) >= b + 2, 180,
                   f"{stream} to commit two batches")
        # Its driver's Prometheus endpoint counts what this copy ran (spark_jobs/stream_metrics.py).
        wait_until(lambda s=stream: jobs.metrics(s).get("k2_stream_batches_total", 0) >= 2, 60,
                   f"{stream}'s metrics to count two batches")
        served = jobs.metrics(stream)
        assert served["k2_stream_rows_in_total"] > 0 and served["k2_stream_last_batch_rows"] > 0, served
        assert served["k2_stream_batches_failed_total"] == 0, served
        assert ("k2_stream_source_lag_records" in served) == (stream == "bronze_ingestion"), served
        jobs.kill9(proc)
        # The new copy replays the batch the kill interrupted (its offsets are in the
        # checkpoint). Bronze and Silver keep their limits: their small files are what
        # keeps the next stream's batches small enough to be killed mid-flow. Gold, the
        # last, takes the rest in one batch instead of a dozen more.
        restart = jobs.run(stream, "--trigger", "availableNow", *(limits if stream != "gold_aggregation" else ()))
        # The kill really was mid-flow: the restarted copy still had rows to process.
        assert any(e["rows_in"] > 0 for e in events_named(restart, "batch")), restart[-2000:]

    bronze = rows(jobs, BRONZE_TABLE)
    assert Counter((r["topic"], r["value"]) for r in bronze) == Counter((s.topic, s.value) for s in everything)
    assert len({(r["topic"], r["partition"], r["offset"]) for r in bronze}) == len(everything)

    for ex, topic in jobs.topics.items():
        silver = rows(jobs, silver_table(ex))
        expected = Counter(s.record["message_id"] for s in everything if s.expect == "valid" and s.topic == topic)
        assert Counter(r["message_id"] for r in silver) == expected  # Silver keeps replays, once each

    dlq = rows(jobs, SILVER_DLQ_TABLE)
    assert Counter(r["error_type"] for r in dlq) == Counter(s.expect for s in everything if s.expect != "valid")

    gold_ids = [r["message_id"] for r in rows(jobs, GOLD_TABLE)]
    assert len(gold_ids) == len(set(gold_ids))
    assert set(gold_ids) == {s.record["message_id"] for s in everything if s.expect == "valid"}
