"""Known v3 trades and known-bad frames for the Spark pipeline tests, and a producer.

Valid records are serialized by confluent-kafka's own ``AvroSerializer`` against the
real registry (independent of the workers' fast encoder and of the Spark code under
test); bad frames are built by hand so each failure mode is exactly one defect.
"""

from __future__ import annotations

import struct
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal

from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from k2.contracts import trade_schema_text
from k2.kafka_admin import admin_client

MESSAGE_ID_NAMESPACE = uuid.UUID("6f1c2b1e-5d0a-5b8e-9c3e-4b2a7f0d1e93")
HOUR_US = 3600 * 1_000_000

# Per exchange: (enum symbol, symbol, base, quote) following each exchange's convention.
PAIRS = {
    "binance": [("BINANCE", "BTCUSDT", "BTC", "USDT"), ("BINANCE", "ETHUSDT", "ETH", "USDT")],
    "kraken": [("KRAKEN", "BTC/USD", "BTC", "USD"), ("KRAKEN", "DOGE/EUR", "DOGE", "EUR")],
}


def message_id(enum: str, symbol: str, trade_id: str) -> str:
    return str(uuid.uuid5(MESSAGE_ID_NAMESPACE, f"{enum}:{symbol}:{trade_id}"))


def trade(exchange: str, n: int, ts_us: int, pair: int | None = None, **override) -> dict:
    enum, symbol, base, quote = PAIRS[exchange][n % 2 if pair is None else pair]
    trade_id = str(1_000_000 + n)
    record = {
        "message_id": message_id(enum, symbol, trade_id),
        "trade_id": trade_id,
        "symbol": symbol,
        "exchange": enum,
        "timestamp": ts_us,
        "price": Decimal("65000.12345678") + n,
        "quantity": Decimal("0.00100000") * (n + 1),
        "base_asset": base,
        "quote_currency": quote,
        "side": "BUY" if n % 3 else "SELL",
        "ingestion_timestamp": ts_us + 1500,
        "vendor_data": {"n": str(n), "source": "k2test"},
    }
    record.update(override)
    return record


def hour_start_us(hours_ago: int) -> int:
    now_us = int(time.time() * 1_000_000)
    return (now_us // HOUR_US - hours_ago) * HOUR_US


@dataclass
class Sent:
    topic: str
    key: bytes | None
    value: bytes
    expect: str  # "valid" or the DLQ error_type expected
    record: dict | None = None


class TradeProducer:
    def __init__(self, bootstrap: str, registry_url: str):
        self.bootstrap = bootstrap
        self.registry = SchemaRegistryClient({"url": registry_url})
        self.serializer = AvroSerializer(self.registry, trade_schema_text(),
                                         conf={"auto.register.schemas": True})
        self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                                  "acks": "all", "linger.ms": 5})
        self.errors: list[str] = []

    def create_topics(self, topics: list[str], partitions: int = 2) -> None:
        admin = admin_client(self.bootstrap)
        futures = admin.create_topics([NewTopic(t, num_partitions=partitions, replication_factor=1)
                                       for t in topics])
        for f in futures.values():
            f.result(30)

    def encode(self, topic: str, record: dict) -> bytes:
        return self.serializer(record, SerializationContext(topic, MessageField.VALUE))

    def send(self, topic: str, value: bytes, key: bytes | None) -> None:
        def done(err, msg) -> None:
            if err is not None:
                self.errors.append(str(err))
        self.producer.produce(topic, value=value, key=key, on_delivery=done)
        self.producer.poll(0)

    def send_all(self, sent: list[Sent]) -> None:
        for s in sent:
            self.send(s.topic, s.value, s.key)
        assert self.producer.flush(60) == 0
        assert not self.errors, self.errors

    def valid(self, topic: str, record: dict) -> Sent:
        return Sent(topic, record["symbol"].encode(), self.encode(topic, record), "valid", record)


def frame(schema_id: int, body: bytes, magic: int = 0) -> bytes:
    return bytes([magic]) + struct.pack(">I", schema_id) + body
