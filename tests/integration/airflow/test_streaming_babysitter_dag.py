"""The babysitter against the real stack: start all, restart after kill -9, restart a stall;
and maintenance (retention, compaction) while the streams run.

The babysitter runs in-process (`airflow dags test`); the runner DAGs it triggers are
executed by the stack's scheduler, so the streams run exactly as in production. The
streams started by the first test keep running into the second (a stack tier test's
cost is mostly Spark start-ups); the second starts them itself when run alone.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
import uuid
from decimal import Decimal

import pytest

from k2 import contracts
from k2.polling import wait_until
from k2.settings import platform
from k2.streams import checkpoint_dir, lock_file, lock_holder, progress_file
from platform_bootstrap import ensure_estate
from stack_api import AirflowApi

pytestmark = [pytest.mark.dags, pytest.mark.integration]

RUNNERS = {s: f"stream_{s}" for s in contracts.STREAMS}
STALL_MINUTES = 1  # only for the stall step: on 2 shared cores a first batch can take longer


def _quiet_for(stream: str) -> float:
    """Seconds since the stream last published progress or took its lock, whichever is newer."""
    ages = [time.time() - path.stat().st_mtime for path in (progress_file(stream, platform()), lock_file(stream, platform()))
            if path.exists()]
    return min(ages, default=0.0)


def _holders() -> dict[str, int | None]:
    return {s: lock_holder(s, platform()) for s in contracts.STREAMS}


def _stop_all(api: AirflowApi) -> None:
    """Fail every runner run (Airflow kills its task) and wait until no stream runs."""
    for dag_id in RUNNERS.values():
        for run in api.runs(dag_id):
            api.fail_run(dag_id, run["dag_run_id"])
    for stream in contracts.STREAMS:
        pid = lock_holder(stream, platform())
        if pid and pid > 0:
            try:
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
    wait_until(lambda: not any(_holders().values()), 90, "all streams stopped", interval=1)


@pytest.fixture(scope="module")
def api(stack, airflow_cli):
    ensure_estate(stack, airflow_cli)
    airflow_cli("dags", "reserialize", timeout=300)  # new DAG files without waiting for a rescan
    client = AirflowApi(stack)
    # The scheduled babysitter (unpaused by `k2 up` on a developer's stack) would trigger
    # runners behind the test's back: the test runs the babysitter itself.
    scheduled = not client.is_paused("streaming_babysitter")
    client.set_paused("streaming_babysitter", True)
    for dag_id in RUNNERS.values():
        client.set_paused(dag_id, False)
    _stop_all(client)
    yield client
    _stop_all(client)  # never leave Spark apps running
    client.set_paused("streaming_babysitter", not scheduled)


def _babysit(airflow_cli, stall_minutes: float = 10) -> dict[str, str]:
    result = airflow_cli("dags", "test", "streaming_babysitter", "-c",
                         json.dumps({"stall_minutes": stall_minutes}), timeout=240)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "state=success" in output, output[-4000:]
    return dict(re.findall(r"STREAM (\w+): (\w+) \(", output))


def _wait_for_copies(old: dict[str, int | None], streams: list[str], timeout: float = 300) -> dict:
    def fresh():
        now = _holders()
        ok = all(now[s] and now[s] > 0 and now[s] != old.get(s) for s in streams)
        return now if ok else None

    return wait_until(fresh, timeout, f"new copies of {streams}", interval=2)


def _produce_trades(stack, count: int = 20) -> None:
    from confluent_kafka import SerializingProducer
    from confluent_kafka.schema_registry.avro import AvroSerializer

    from k2.schema_registry import registry_client

    serializer = AvroSerializer(registry_client(stack.registry_url), contracts.trade_schema_text(),
                                conf={"auto.register.schemas": False, "use.latest.version": True})
    producer = SerializingProducer({"bootstrap.servers": stack.kafka_bootstrap,
                                    "value.serializer": serializer})
    now_us = int(time.time() * 1_000_000)
    for i in range(count):
        producer.produce(contracts.trade_topic("binance"), key=b"BTCUSDT", value={
            "message_id": str(uuid.uuid4()), "trade_id": str(now_us + i), "symbol": "BTCUSDT",
            "exchange": "BINANCE", "timestamp": now_us, "price": Decimal("50000.10000000"),
            "quantity": Decimal("0.01000000"), "base_asset": "BTC", "quote_currency": "USDT",
            "side": "BUY", "ingestion_timestamp": now_us, "vendor_data": {},
        })
    assert producer.flush(30) == 0


def test_babysitter_starts_restarts_crashed_and_stalled_streams(api, airflow_cli, stack):
    streams = list(contracts.STREAMS)

    # 1. Nothing runs: every stream is started, each by exactly one runner run.
    states = _babysit(airflow_cli)
    assert set(states) == set(streams)
    assert set(states.values()) <= {"STARTED", "RESTARTED"}, states
    first = _wait_for_copies({}, streams)
    assert all(len(api.runs(RUNNERS[s])) == 1 for s in streams)
    wait_until(lambda: all((checkpoint_dir(s, platform()) / "metadata").exists() for s in streams), 300,
               "every stream's query to start (Spark start-up is slow on 2 shared cores)", interval=2)

    # 2. All running: left alone (the start tasks are skipped, no new runner run).
    states = _babysit(airflow_cli)
    assert set(states.values()) <= {"HEALTHY", "IDLE"}, states
    assert _holders() == first

    # 3. kill -9 of bronze: its runner task's retry starts it again from its checkpoint,
    #    without waiting for a babysitter tick; the others are untouched.
    bronze = contracts.STREAMS[0]
    os.kill(first[bronze], signal.SIGKILL)
    second = _wait_for_copies(first, [bronze], timeout=240)
    assert {s: second[s] for s in streams[1:]} == {s: first[s] for s in streams[1:]}
    assert len(api.runs(RUNNERS[bronze])) == 1  # the same run, retried: no second run queued

    # 3b. Once the runner run has ended (retries spent, or failed by an operator), the
    #     babysitter restarts the stream from its checkpoint.
    for run in api.runs(RUNNERS[bronze]):
        api.fail_run(RUNNERS[bronze], run["dag_run_id"])  # Airflow stops its task: no retry
    try:
        os.killpg(os.getpgid(second[bronze]), signal.SIGKILL)
    except ProcessLookupError:
        pass  # Airflow's stop got there first
    wait_until(lambda: not api.runs(RUNNERS[bronze]) and lock_holder(bronze, platform()) is None, 120,
               "the failed runner run to end", interval=1)
    states = _babysit(airflow_cli)
    assert states[bronze] == "RESTARTED", states
    assert {states[s] for s in streams[1:]} <= {"HEALTHY", "IDLE"}, states
    second = _wait_for_copies(second, [bronze])

    # 4. Stall bronze (freeze its JVM and driver) while Kafka receives new trades.
    os.killpg(os.getpgid(second[bronze]), signal.SIGSTOP)
    _produce_trades(stack)
    # What the babysitter measures: time since the newer of the last progress and the lock.
    wait_until(lambda: _quiet_for(bronze) > STALL_MINUTES * 60 + 2, 300,
               f"bronze to be silent for more than {STALL_MINUTES} min", interval=1)
    states = _babysit(airflow_cli, stall_minutes=STALL_MINUTES)
    assert states[bronze] == "STALLED", states
    assert {states[s] for s in streams[1:]} <= {"HEALTHY", "IDLE"}, states
    third = _wait_for_copies(second, [bronze])
    assert third[bronze] != second[bronze]


def test_retention_and_compaction_run_while_streams_stay_healthy(api, airflow_cli):
    streams = list(contracts.STREAMS)
    if not all(pid and pid > 0 for pid in _holders().values()):
        _babysit(airflow_cli)
    running = _wait_for_copies({}, streams)
    wait_until(lambda: all((checkpoint_dir(s, platform()) / "metadata").exists() for s in streams), 300,
               "every stream's query to start", interval=2)

    for dag_id in ("retention", "compaction"):
        result = airflow_cli("dags", "test", dag_id, timeout=900)
        output = result.stdout + result.stderr
        assert result.returncode == 0 and "state=success" in output, output[-4000:]

    assert _holders() == running  # no stream died during maintenance
    states = _babysit(airflow_cli)
    assert set(states.values()) <= {"HEALTHY", "IDLE"}, states
    assert _holders() == running
