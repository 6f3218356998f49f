"""Kafka administration: the one place an ``AdminClient`` is built, the desired topics from
the contracts, idempotent creation, deletion and end offsets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from k2 import contracts
from k2.kafka_client import KafkaTarget, as_config

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient

DEFAULT_RETENTION_HOURS = 168  # one week, like the broker default; Bronze keeps 7 days too
DLQ_PARTITIONS = 3
TIMEOUT_S = 30.0


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def desired_topics(
    retention_hours: int = DEFAULT_RETENTION_HOURS,
    partitions: dict[str, int] | None = None,
) -> list[TopicSpec]:
    """One topic per exchange (partitions from ``EXCHANGES`` unless overridden) plus the DLQ."""
    overrides = partitions or {}
    config = {"retention.ms": str(retention_hours * 3600 * 1000)}
    specs = [
        TopicSpec(
            contracts.trade_topic(ex.name),
            int(overrides.get(ex.name, ex.default_partitions)),
            config,
        )
        for ex in contracts.EXCHANGES
    ]
    specs.append(TopicSpec(contracts.DLQ_TOPIC, int(overrides.get("dlq", DLQ_PARTITIONS)), config))
    return specs


def admin_client(kafka: KafkaTarget, **config: object) -> AdminClient:
    """An admin client of ``kafka`` (:func:`k2.kafka_client.client_config`, or a bootstrap
    string); ``config``: more librdkafka settings (e.g. ``log_level=0``)."""
    from confluent_kafka.admin import AdminClient

    return AdminClient({**as_config(kafka), **config})


def existing_topics(admin: AdminClient) -> dict[str, int]:
    """Topic name -> partition count (internal topics excluded)."""
    metadata = admin.list_topics(timeout=TIMEOUT_S)
    return {
        name: len(meta.partitions)
        for name, meta in metadata.topics.items()
        if not name.startswith("__")
    }


def ensure_topics(admin: AdminClient, specs: list[TopicSpec]) -> dict[str, str]:
    """Create the missing topics; returns topic -> ``created`` | ``exists``.

    An existing topic is left as it is (changing partition counts reorders keys, so
    that is an operator's decision, reported here rather than done silently).
    """
    from confluent_kafka.admin import NewTopic

    present = existing_topics(admin)
    results: dict[str, str] = {}
    missing = []
    for spec in specs:
        if spec.name in present:
            have = present[spec.name]
            results[spec.name] = (
                "exists" if have == spec.partitions
                else f"exists with {have} partitions (wanted {spec.partitions}; left unchanged)"
            )
        else:
            missing.append(NewTopic(spec.name, num_partitions=spec.partitions,
                                    replication_factor=1, config=spec.config))
    if missing:
        for name, future in admin.create_topics(missing, request_timeout=TIMEOUT_S).items():
            try:
                future.result()
                results[name] = "created"
            except Exception as exc:  # TOPIC_ALREADY_EXISTS from a concurrent creator is fine
                if "TOPIC_ALREADY_EXISTS" in str(exc):
                    results[name] = "exists"
                else:
                    raise RuntimeError(f"creating Kafka topic {name!r} failed: {exc}") from exc
    return results


def delete_topics(admin: AdminClient, names: list[str]) -> dict[str, str]:
    """Delete topics; returns topic -> ``deleted`` | ``absent``."""
    if not names:
        return {}
    results: dict[str, str] = {}
    for name, future in admin.delete_topics(list(names), operation_timeout=TIMEOUT_S).items():
        try:
            future.result()
            results[name] = "deleted"
        except Exception as exc:
            if "UNKNOWN_TOPIC" in str(exc):
                results[name] = "absent"
            else:
                raise RuntimeError(f"deleting Kafka topic {name!r} failed: {exc}") from exc
    return results


def end_offsets(kafka: KafkaTarget, topics: list[str]) -> dict[str, dict[int, int]]:
    """High watermark per topic partition (what a stream has to catch up to)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**as_config(kafka), "group.id": "k2-admin-offsets", "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(timeout=TIMEOUT_S)
        out: dict[str, dict[int, int]] = {}
        for topic in topics:
            meta = metadata.topics.get(topic)
            if meta is None or meta.error is not None:
                continue
            out[topic] = {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT_S)[1]
                for p in meta.partitions
            }
        return out
    finally:
        consumer.close()
