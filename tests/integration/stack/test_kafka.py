"""The local Kafka broker: topics, produce with idempotence, consume back."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import NewTopic

from k2.kafka_admin import admin_client

pytestmark = pytest.mark.integration


def test_produce_and_consume_round_trip(stack, run_id):
    topic = f"k2test.kafka.{run_id}"
    admin = admin_client(stack.kafka_bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(30)

    producer = Producer({"bootstrap.servers": stack.kafka_bootstrap, "enable.idempotence": True,
                         "acks": "all", "linger.ms": 5})
    delivered: list[str] = []
    sent = {f"key-{i % 3}": None for i in range(3)}
    for i in range(30):
        producer.produce(topic, key=f"key-{i % 3}", value=f"value-{i}",
                         on_delivery=lambda err, msg: delivered.append(err or msg.value().decode()))
    assert producer.flush(30) == 0
    assert sorted(delivered) == sorted(f"value-{i}" for i in range(30))

    consumer = Consumer({"bootstrap.servers": stack.kafka_bootstrap, "group.id": f"g-{run_id}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    received: dict[str, list[str]] = {}
    try:
        for _ in range(200):
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                if sum(map(len, received.values())) == 30:
                    break
                continue
            received.setdefault(msg.key().decode(), []).append(msg.value().decode())
    finally:
        consumer.close()
    assert set(received) == set(sent)
    # One key lands on one partition, so per-key order is the produce order.
    for key, values in received.items():
        k = int(key.split("-")[1])
        assert values == [f"value-{i}" for i in range(30) if i % 3 == k]
