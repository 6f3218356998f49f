"""Bronze reports, exactly, the offsets Kafka deleted while it was stopped.

Bronze drains a topic and stops; more records arrive; Kafka then drops the head of
both partitions (``delete_records``, which moves a partition's log-start offset just
as retention does when it deletes a segment, but now instead of after the broker's
5-minute retention check: the consumer sees the same out-of-range offsets). Bronze
restarts and must name the exact ranges it could not read, in its ledger, progress,
log, `k2 streams status` and the babysitter's verdict, and must still ingest the rest.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from k2.catalog import catalog
from k2.contracts import BRONZE_TABLE
from k2.kafka_admin import admin_client
from k2.log import events_named
from k2.settings import platform
from k2.streams import read_losses
from k2_airflow.babysitter import probes
from k2_airflow.babysitter.decision import decide

from .jobs import Jobs

pytestmark = pytest.mark.integration
STREAM = "bronze_ingestion"


def produce(topic: str, partition: int, n: int, tag: str) -> None:
    producer = Producer({"bootstrap.servers": platform().kafka_bootstrap, "enable.idempotence": True})
    errors: list[str] = []
    for i in range(n):
        producer.produce(topic, value=f"{tag}-{i}".encode(), partition=partition,
                         on_delivery=lambda err, msg: errors.append(str(err)) if err else None)
    assert producer.flush(30) == 0 and not errors, errors


def low_watermarks(admin: AdminClient, topic: str, partitions: int) -> list[int]:
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": platform().kafka_bootstrap, "group.id": "k2test-loss"})
    try:
        return [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[0] for p in range(partitions)]
    finally:
        consumer.close()


def bronze_offsets(jobs: Jobs, topic: str) -> dict[int, list[int]]:
    rows = catalog(platform()).load_table(f"{jobs.namespace}.{BRONZE_TABLE}").scan(
        selected_fields=("topic", "partition", "offset")).to_arrow().to_pylist()
    out: dict[int, list[int]] = {}
    for r in rows:
        if r["topic"] == topic:
            out.setdefault(r["partition"], []).append(r["offset"])
    return {p: sorted(o) for p, o in out.items()}


def test_offsets_deleted_while_bronze_was_stopped_are_reported_exactly(jobs: Jobs):
    topic = jobs.topics["binance"]
    admin = admin_client(platform().kafka_bootstrap)
    for f in admin.create_topics([NewTopic(t, num_partitions=2, replication_factor=1)
                                  for t in jobs.topics.values()]).values():
        f.result(30)
    jobs.run("bootstrap_tables")
    produce(topic, 0, 10, "a")
    produce(topic, 1, 10, "a")
    first = jobs.run(STREAM, "--trigger", "availableNow")
    assert bronze_offsets(jobs, topic) == {0: list(range(10)), 1: list(range(10))}
    assert events_named(first, "data_lost") == [] and read_losses(STREAM, jobs.settings) == []

    # While Bronze is down: 10 more per partition, then Kafka drops p0 up to 15 and all
    # of p1's new records; p1 then receives 3 more (offsets 20..22).
    produce(topic, 0, 10, "b")
    produce(topic, 1, 10, "b")
    deleted = admin.delete_records([TopicPartition(topic, 0, 15), TopicPartition(topic, 1, 20)])
    for f in deleted.values():
        f.result(30)
    produce(topic, 1, 3, "c")
    assert low_watermarks(admin, topic, 2) == [15, 20]  # the broker agrees on what is gone

    second = jobs.run(STREAM, "--trigger", "availableNow")

    # Everything still in Kafka reached Bronze, once.
    assert bronze_offsets(jobs, topic) == {0: list(range(10)) + list(range(15, 20)),
                                           1: list(range(10)) + list(range(20, 23))}
    lost = [(r.topic, r.partition, r.first_offset, r.end_offset) for r in read_losses(STREAM, jobs.settings)]
    assert lost == [(topic, 0, 10, 15), (topic, 1, 10, 20)]
    logged = events_named(second, "data_lost")
    assert [(e["level"], e["topic"], e["partition"], e["first_offset"], e["last_offset"], e["records"])
            for e in logged] == [("error", topic, 0, 10, 14, 5), ("error", topic, 1, 10, 19, 10)], second[-3000:]
    progress = jobs.progress(STREAM)
    assert (progress["lost_offsets_total"], progress["lost_ranges_total"]) == (15, 2)

    env = {**jobs.env, "K2_CHECKPOINT_ROOT": str(jobs.checkpoint_root)}
    status = subprocess.run([str(Path(sys.executable).parent / "k2"), "streams", "status"], env=env,
                            capture_output=True, text=True, timeout=60, check=True, cwd=os.getcwd()).stdout
    assert "DATA LOST: 15 offsets in 2 range(s)" in status
    assert f"{topic}[0] offsets 10..14 (5 records)" in status and f"{topic}[1] offsets 10..19 (10 records)" in status

    # The babysitter reports it once: DATA_LOST now, nothing new after it has reported.
    obs = probes.observe(STREAM, jobs.settings, runner_active_runs=0)
    verdict = decide(obs, stall_after_s=600, start_grace_s=300)
    assert verdict.data_lost is not None and verdict.data_lost.startswith("15 offsets in 2 range(s)")
    probes.mark_losses_reported(STREAM, jobs.settings, obs.loss_ledger_size)
    assert decide(probes.observe(STREAM, jobs.settings, runner_active_runs=0), 600, 300).data_lost is None
