"""Producing trades and dead letters to Kafka without loss.

One idempotent producer (``acks=all``, ``enable.idempotence``) per worker process,
batching by ``linger.ms`` with compression. Deliveries are confirmed by a single
delivery callback served by ``poll()`` from the worker loop: it counts successes,
failures and produce latency (librdkafka's own ``Message.latency()``). A failed
delivery is produced again (the record's message_id makes the duplicate harmless),
never dropped. When the local queue is full, ``produce`` polls until there is room:
the worker stops reading its socket and TCP pushes back on the exchange, instead of
losing data or growing without bound. ``close()`` flushes; there is no
flush-every-N workaround: ``linger.ms`` and ``poll()`` deliver everything.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException, Producer

from k2.errors import K2Error
from k2.kafka_client import KafkaTarget, as_config
from k2.log import EventLog
from workers.stats import WorkerStats


class ProducerFatalError(K2Error, RuntimeError):
    """librdkafka reported a fatal error (e.g. idempotence broken): restart the process."""


def producer_config(
    kafka: KafkaTarget, client_id: str, linger_ms: int, compression: str, queue_max_messages: int
) -> dict:
    return {
        **as_config(kafka),
        "client.id": client_id,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": linger_ms,
        "compression.type": compression,
        "queue.buffering.max.messages": queue_max_messages,
        # Bounded memory too (the worker has an RSS ceiling): 128 MiB of pending records.
        "queue.buffering.max.kbytes": 131072,
        "batch.size": 1_000_000,
    }


class KafkaSink:
    """The worker's single producer, shared by the trade topic and the DLQ topic."""

    def __init__(self, config: dict, stats: WorkerStats, log: EventLog, *, backpressure_poll_s: float = 0.05):
        self.stats = stats
        self.log = log
        self._backpressure_poll_s = backpressure_poll_s
        self._retry: deque[tuple[str, bytes | None, bytes]] = deque()
        self._fatal: str | None = None
        # Set on SIGTERM: a full queue that cannot drain (Kafka down) must not keep the
        # process from exiting forever; after this long the record is reported as lost.
        self.stopping = False
        self.give_up_after_stop_s = 30.0
        # Called with (topic, key, value) of each record Kafka acknowledged (progress tracking).
        self.on_acked: Callable[[str, bytes | None, bytes], None] | None = None
        self._producer = Producer({**config, "on_delivery": self._on_delivery, "error_cb": self._on_error})

    # hot path ----------------------------------------------------------------------

    def produce(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Queue one record; blocks (polling deliveries) while the local queue is full."""
        try:
            self._producer.produce(topic, value, key)
        except BufferError:
            self._wait_for_room(topic, key, value)

    def poll(self) -> None:
        """Serve delivery callbacks; re-produce failed deliveries; raise on fatal errors."""
        self._producer.poll(0)
        if self._retry:
            self._produce_retries()
        if self._fatal:
            raise ProducerFatalError(self._fatal)

    # internals ---------------------------------------------------------------------

    def _wait_for_room(self, topic: str, key: bytes | None, value: bytes) -> None:
        self.stats.backpressure_waits += 1
        stop_seen_at: float | None = None
        while True:
            self._producer.poll(self._backpressure_poll_s)
            if self._fatal:
                raise ProducerFatalError(self._fatal)
            if self.stopping:
                stop_seen_at = stop_seen_at or time.monotonic()
                if time.monotonic() - stop_seen_at > self.give_up_after_stop_s:
                    self.stats.errors["lost_at_shutdown"] += 1
                    self.log.error("record_lost_at_shutdown", topic=topic, queue_depth=len(self._producer),
                                   reason="producer queue full and Kafka not draining during shutdown")
                    return
            try:
                self._producer.produce(topic, value, key)
                return
            except BufferError:
                self.log.throttled(
                    "warning", "producer_backpressure", "queue_full", 10.0, queue_depth=len(self._producer)
                )

    def _produce_retries(self) -> None:
        while self._retry:
            topic, key, value = self._retry.popleft()
            self.produce(topic, key, value)

    def _on_delivery(self, err: KafkaError | None, msg) -> None:
        if err is None:
            self.stats.delivered += 1
            latency = msg.latency()
            if latency is not None:
                self.stats.produce_latency.observe(latency)
            if self.on_acked is not None:
                self.on_acked(msg.topic(), msg.key(), msg.value())
            return
        self.stats.delivery_failures += 1
        self.log.throttled(
            "error", "delivery_failed", err.name(), 10.0, topic=msg.topic(), error=err.str(),
            retriable=err.retriable(), action="produced again",
        )
        # Idempotence keeps ordering within a retry; a second produce may duplicate,
        # which message_id deduplicates downstream. Losing the record is not an option.
        self._retry.append((msg.topic(), msg.key(), msg.value()))

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = f"fatal Kafka producer error: {err.str()}"
            self.log.error("producer_fatal", error=err.str())
        else:
            # Transient (broker down, ...): librdkafka retries by itself; say so once in a while.
            self.log.throttled("warning", "producer_error", err.name(), 30.0, error=err.str())

    # shutdown ----------------------------------------------------------------------

    def pending(self) -> int:
        return len(self._producer) + len(self._retry)

    def flush(self, timeout_s: float) -> int:
        """Deliver everything queued; returns how many records are still undelivered."""
        self._producer.poll(0)
        self._produce_retries()
        remaining = self._producer.flush(timeout_s)
        if self._retry:  # failures reported during the flush: one more round
            self._produce_retries()
            remaining = self._producer.flush(timeout_s)
        return remaining + len(self._retry)


def check_topic_exists(kafka: KafkaTarget, topic: str, timeout_s: float = 10.0) -> bool:
    """Whether ``topic`` exists (metadata lookup); False when the broker is unreachable."""
    from k2.kafka_admin import admin_client

    try:
        meta = admin_client(kafka).list_topics(topic=topic, timeout=timeout_s)
    except KafkaException:
        return False
    t = meta.topics.get(topic)
    return t is not None and t.error is None


