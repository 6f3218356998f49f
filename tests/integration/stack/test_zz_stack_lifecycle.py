"""`k2 stack down/status/up`: everything stops, restarts healthy, keeps its data, and shows
no secret in `ps` or its logs while it starts.

Runs alone: it restarts the whole stack that every other integration test uses. `make test`
runs it right after the stack starts, beside the unit tier, before any other stack tier.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from k2.catalog import catalog
from k2.settings import platform
from process_watch import Watcher, leaks, stack_secrets

pytestmark = [pytest.mark.integration, pytest.mark.restarts_stack]

K2 = str(Path(sys.executable).parent / "k2")


def _k2(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([K2, *args], capture_output=True, text=True, timeout=timeout)


def test_down_stops_everything_and_up_restores_data(stack, run_id):
    topic = f"k2test.durable.{run_id}"
    producer = Producer({"bootstrap.servers": stack.kafka_bootstrap, "acks": "all"})
    producer.produce(topic, key="k", value=b"survives-restart")
    assert producer.flush(30) == 0
    registry = SchemaRegistryClient({"url": stack.registry_url})
    schema = '{"type":"record","name":"D","fields":[{"name":"x","type":"int"}]}'
    schema_id = registry.register_schema(f"{topic}-value", Schema(schema, "AVRO"))
    cat = catalog(platform())
    cat.create_namespace_if_not_exists(f"k2test_{run_id}_durable")

    down = _k2("stack", "down")
    assert down.returncode == 0, down.stderr
    status = _k2("stack", "status")
    assert status.returncode == 3
    states = {line.split()[0]: line.split()[1] for line in status.stdout.splitlines()[1:]}
    assert {states[s] for s in ("postgres", "kafka", "registry", "airflow-scheduler")} == {"stopped"}

    began = time.time()
    with Watcher(platform().home_path / "secrets") as watch:  # what `ps` shows meanwhile
        up = _k2("stack", "up")
    assert up.returncode == 0, up.stderr[-3000:]
    # No secret on any command line, in the output of `up` or in a log it wrote to.
    secrets = stack_secrets(platform())
    assert secrets, "the stack has no secrets to look for"
    assert [a for a in watch.args if any(secret in a for secret in secrets)] == []
    assert leaks(secrets, {"k2 stack up": up.stdout + up.stderr}, platform().logs_dir, since=began) == []
    again = _k2("stack", "up")  # idempotent: nothing restarts
    assert again.returncode == 0 and "ready on" not in again.stderr
    assert _k2("stack", "status").returncode == 0

    consumer = Consumer({"bootstrap.servers": stack.kafka_bootstrap, "group.id": f"d-{run_id}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    values = []
    for _ in range(60):
        msg = consumer.poll(1.0)
        if msg is not None and not msg.error():
            values.append(msg.value())
            break
    consumer.close()
    assert values == [b"survives-restart"]
    fresh = SchemaRegistryClient({"url": stack.registry_url})
    assert fresh.get_latest_version(f"{topic}-value").schema_id == schema_id
    assert (f"k2test_{run_id}_durable",) in catalog(platform()).list_namespaces()
    catalog(platform()).drop_namespace(f"k2test_{run_id}_durable")
