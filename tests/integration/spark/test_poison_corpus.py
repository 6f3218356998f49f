"""A poison corpus produced into the live trade topics while trades flow through all three
streams: nothing stops, Gold gets exactly the good trades, silver_dlq exactly the poison.

One start-up of each stream (spark-submit costs ~15 s each), short triggers; good trades
before, between and after the poison, so a stream stuck on a poison batch would show as
missing good trades as well as failed batches.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

import pytest

from k2.catalog import catalog
from k2.contracts import GOLD_TABLE, SILVER_DLQ_TABLE, silver_table
from k2.log import events_named, parse_events
from k2.polling import wait_until
from k2.settings import platform
from tests.unit.spark.wire_bytes import LONG_MAX, LONG_MIN, header_reason, v3_body, varint

from .jobs import Jobs
from .trades import Sent, TradeProducer, frame, hour_start_us, trade

pytestmark = pytest.mark.integration
STREAMS = ("bronze_ingestion", "silver_transformation", "gold_aggregation")
DECIMAL_MAX = 10**18 - 1  # 9999999999.99999999


def rows(jobs: Jobs, table: str) -> list[dict]:
    return catalog(platform()).load_table(f"{jobs.namespace}.{table}").scan().to_arrow().to_pylist()


def raw_fields(record: dict, **override) -> dict:
    """A trades.trade() record as wire_bytes.v3_body takes it (decimals unscaled, enums as indexes)."""
    f = {**record, "price": int(record["price"] * 10**8), "quantity": int(record["quantity"] * 10**8),
         "exchange": ["BINANCE", "KRAKEN"].index(record["exchange"]), "side": ["BUY", "SELL"].index(record["side"])}
    return {**f, **override}


def poison_corpus(topics: dict[str, str], producer: TradeProducer, ts: int) -> tuple[list[Sent], list[Sent]]:
    """(poison, valid-but-extreme): every hostile kind of value, each with the reason it must get."""
    b, k = topics["binance"], topics["kraken"]
    good_value = producer.encode(b, trade("binance", 900, ts))
    gid = int.from_bytes(good_value[1:5], "big")
    rnd = random.Random(20260101)
    poison: list[Sent] = []

    def add(topic: str, value: bytes, reason: str | None = None) -> None:
        poison.append(Sent(topic, b"poison", value, reason or header_reason(value, gid)))

    for n in (1, 3, 5, 9, 64, 512):  # random bytes; their reason follows from their header
        value = rnd.randbytes(n)
        add(b if n % 2 else k, value if header_reason(value, gid) else b"\x01" + value)
    add(b, b"")
    add(k, b"\x00\x00\x00\x00")
    add(b, b"\x01" + good_value[1:], "bad_magic_byte")
    add(k, b"\xff" + good_value[1:], "bad_magic_byte")
    for sid in (0, -1, 2**31 - 1, 2**31, 2**32 - 1, 2**31 + 1, 2**24):
        add(b, frame(sid & 0xFFFFFFFF, good_value[5:]), "unknown_schema_id")
    add(b, frame(gid, b""), "decode_error")
    add(k, frame(gid, b"\xff" * 12), "decode_error")
    add(b, frame(gid, rnd.randbytes(40)), "decode_error")  # 40 random bytes do not make a v3 record
    add(b, frame(gid, varint(2**31 - 20) + b"ab"), "decode_error")  # a 2 GB string length prefix
    add(b, good_value[:30], "decode_error")

    def extreme(topic: str, ex: str, n: int, reason: str, **override) -> Sent:
        value = frame(gid, v3_body(raw_fields(trade(ex, n, ts), **override)))
        return Sent(topic, b"poison", value, reason)

    poison += [
        extreme(b, "binance", 901, "ancient_timestamp", timestamp=0),
        extreme(b, "binance", 902, "ancient_timestamp", timestamp=-1),
        extreme(k, "kraken", 903, "ancient_timestamp", timestamp=LONG_MIN),
        extreme(k, "kraken", 904, "future_timestamp", timestamp=LONG_MAX),
        extreme(b, "binance", 905, "ancient_timestamp", ingestion_timestamp=LONG_MIN),
        extreme(b, "binance", 906, "value_out_of_range", price=10**18),
        extreme(k, "kraken", 907, "value_out_of_range", quantity=2**64 + 5),
        extreme(b, "binance", 908, "non_positive_price", price=-DECIMAL_MAX),
        extreme(k, "kraken", 909, "missing_field", message_id=""),
        extreme(b, "binance", 910, "missing_field", symbol="", base_asset="", quote_currency=""),
        extreme(k, "kraken", 911, "decode_error", side=7),
    ]
    # Extreme but valid: these are good trades and must reach Gold.
    valid = []
    for n, override in ((920, {"price": DECIMAL_MAX, "quantity": 1}),
                        (921, {"vendor_data": {"blob": "v" * 500_000, "": ""}})):
        record = trade("kraken", n, ts + n)
        value = frame(gid, v3_body(raw_fields(record, **override)))
        valid.append(Sent(k, record["symbol"].encode(), value, "valid", record))
    return poison, valid


@pytest.fixture(scope="module")
def producer() -> TradeProducer:
    return TradeProducer(platform().kafka_bootstrap, platform().registry_url)


def test_poison_corpus_stops_nothing(jobs: Jobs, producer: TradeProducer):
    started = time.monotonic()
    jobs.run("bootstrap_tables")
    producer.create_topics(list(jobs.topics.values()))
    ts = hour_start_us(1)
    good = [producer.valid(t, trade(ex, n, ts + n * 1000)) for ex, t in jobs.topics.items() for n in range(20)]
    producer.send_all(good[:10])  # some trades before the streams start

    procs = {s: jobs.start(s, "--trigger", "2 seconds") for s in STREAMS}
    wait_until(lambda: all(events_named(Path(p.log_path).read_text(), "query_started") for p in procs.values()),
               240, "all three streams to start")
    before = {s: jobs.committed_batches(s) for s in STREAMS}

    poison, extreme_valid = poison_corpus(jobs.topics, producer, ts)
    producer.send_all(good[10:25] + poison[: len(poison) // 2])
    producer.send_all(poison[len(poison) // 2:] + extreme_valid + good[25:])
    all_good = good + extreme_valid

    def gold_ids() -> set[str]:
        return {r["message_id"] for r in rows(jobs, GOLD_TABLE)}

    def dlq_count() -> int:
        return len(rows(jobs, SILVER_DLQ_TABLE))

    expected_ids = {s.record["message_id"] for s in all_good}
    wait_until(lambda: gold_ids() >= expected_ids and dlq_count() >= len(poison), 150,
               "Gold to hold every good trade and the DLQ every poison record", interval=2)

    for stream, proc in procs.items():  # zero failed batches: a failed batch ends the stream
        log = Path(proc.log_path).read_text()
        assert proc.poll() is None, f"{stream} exited {proc.returncode}:\n{log[-3000:]}"
        errors = [e for e in parse_events(log) if e.get("level") == "error"]
        assert errors == [] and "terminated with exception" not in log, log[-3000:]
        assert jobs.committed_batches(stream) > before[stream], f"{stream} committed nothing after the poison"

    gold = rows(jobs, GOLD_TABLE)
    assert sorted(r["message_id"] for r in gold) == sorted(expected_ids)
    dlq = rows(jobs, SILVER_DLQ_TABLE)
    assert Counter((r["topic"], r["value"], r["error_type"]) for r in dlq) == Counter(
        (s.topic, s.value, s.expect) for s in poison)
    assert all(r["error_message"] for r in dlq)
    for ex, topic in jobs.topics.items():
        silver = rows(jobs, silver_table(ex))
        assert Counter(r["message_id"] for r in silver) == Counter(
            s.record["message_id"] for s in all_good if s.topic == topic)
    print(f"\npoison corpus: {len(poison)} poison, {len(all_good)} good, {time.monotonic() - started:.0f} s")
