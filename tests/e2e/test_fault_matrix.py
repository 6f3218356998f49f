"""Fault matrix: while trades flow, kill -9 every moving part.

Faults, in this order: the Kafka broker and the schema registry, one after the other
(then restarted: the only faults other tests would feel, so they come first), each
worker process (the supervisor restarts it), the three streams at once (as when the
machine's Spark dies; each restarted from its checkpoint, as the babysitter does), and
a network stall on the exchange connections (the simulator goes silent; the worker's
watchdog reconnects). Afterwards Gold must still hold every trade the simulator sent,
once each, and nothing no phase sent (the pipeline is shared with the e2e test:
tests/e2e/shared_pipeline.py). Each fault's time to recovery is printed in the test
summary and written to ``$K2_HOME/reports/fault_matrix.json``.
"""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest

from k2.contracts import STREAMS, silver_table
from k2.exchanges import names
from k2.polling import wait_until
from k2.settings import fresh_platform
from k2ops.pipeline import IsolatedPipeline
from k2ops.stack import kafka, registry
from shared_pipeline import (
    SENT_ONLY,
    SharedPipeline,
    child_pid,
    kill_worker,
    market_trades,
    possible_loss_windows,
    topic_trades,
    wait_for_deliveries,
    wait_for_market,
    worker_events,
)
from workers.simulator import SimulatorConfig, SimulatorThread

pytestmark = [pytest.mark.e2e, pytest.mark.faults, pytest.mark.timeout(1800)]
PHASE = "faults"  # this module's market run on the tier's shared pipeline (tests/e2e/conftest.py)

WATCHDOG_S = 5.0
RECOVERY: list[dict] = []  # read by tests/e2e/conftest.py for the terminal summary


def _stall_recoveries(pipe: IsolatedPipeline, exchange: str) -> list[float]:
    """Seconds from each watchdog-detected stall to the next connection of ``exchange``."""
    out, stalled_at = [], None
    for e in worker_events(pipe):
        if e.get("exchange") != exchange:
            continue
        if e.get("event") == "connection_closed" and e.get("reason") == "stall":
            stalled_at = datetime.fromisoformat(e["ts"].replace("Z", "+00:00"))
        elif e.get("event") == "connected" and stalled_at is not None:
            out.append((datetime.fromisoformat(e["ts"].replace("Z", "+00:00")) - stalled_at).total_seconds())
            stalled_at = None
    return out


def _where_lost(pipe: IsolatedPipeline, lost: dict[str, dict]) -> dict[str, list]:
    """For trades missing from Gold: the furthest layer each one reached (diagnosis)."""
    silver = set()
    for exchange in names():
        silver |= set(pipe.table(silver_table(exchange)).scan(selected_fields=("message_id",))
                      .to_arrow().column("message_id").to_pylist())
    in_kafka: dict[str, tuple[int, int]] = {}
    for topic in pipe.topics.values():
        for partition, offset, value in topic_trades(pipe.settings.kafka_bootstrap, pipe.settings.registry_url, topic):
            if value is not None and value["message_id"] in lost:
                in_kafka[value["message_id"]] = (partition, offset)
    where: dict[str, list] = {"not_in_kafka": [], "in_kafka_not_silver": [], "in_silver_not_gold": []}
    for mid, trade in lost.items():
        ident = (trade["exchange"], trade["symbol"], int(trade["trade_id"]))
        if mid in silver:
            where["in_silver_not_gold"].append(ident)
        elif mid in in_kafka:
            where["in_kafka_not_silver"].append((*ident, *in_kafka[mid]))
        else:
            where["not_in_kafka"].append(ident)
    return {k: sorted(v) for k, v in where.items()}


def _record(fault: str, began: float, detail: str = "") -> None:
    RECOVERY.append({"fault": fault, "recovery_s": round(time.monotonic() - began, 1), "detail": detail})


@pytest.fixture(scope="module")
def faults_run(stack, shared: SharedPipeline):
    pipe, keeper = shared.pipe, shared.keeper
    record = pipe.workdir / "simulator-faults.jsonl"
    # Every exchange connection goes silent 50 s after it opens, for 20 s: the stall fault.
    # 4 trades/s per venue: the 20/s of two venues, spread over five.
    sim = SimulatorThread(SimulatorConfig(rate=4, seed=5, record=str(record), stall_after_s=50,
                                          stall_for_s=20))
    s = fresh_platform()
    try:
        pipe.start_workers(sim.worker_env(), phase=PHASE, K2_WORKERS_WATCHDOG_S=str(WATCHDOG_S), **SENT_ONLY)
        for exchange in names():
            wait_until(lambda ex=exchange: child_pid(pipe, ex), 60, f"{exchange} worker")

        for exchange in names():
            wait_for_deliveries(pipe, exchange, 60)

        # The broker and the registry first: the only faults felt outside this pipeline.
        for name, module in (("kafka", kafka), ("registry", registry)):
            service = module.service(s)
            began = time.monotonic()
            os.killpg(service.pid(), signal.SIGKILL)
            wait_until(lambda svc=service: svc.state() == "crashed", 30, f"{name} down")
            service.start()
            _record(f"kill -9 {name} + restart", began, "until healthy again")

        bronze_before = pipe.last_batch("bronze_ingestion")
        began = time.monotonic()
        wait_until(lambda: pipe.last_batch("bronze_ingestion") > bronze_before + 1, 300,
                   "bronze to commit new batches after the broker restart")
        _record("data flowing after broker restart", began, "two new bronze batches")

        for exchange in names():  # kill -9 of each worker
            began = time.monotonic()
            kill_worker(pipe, exchange)
            _record(f"kill -9 worker {exchange}", began, "supervisor restart until reconnected")

        # kill -9 of all three streams at once (as when the machine's Spark dies), each
        # restarted from its checkpoint by the keeper, as the babysitter would.
        before = {stream: pipe.last_batch(stream) for stream in STREAMS}
        began = time.monotonic()
        keeper.paused.update(STREAMS)
        for stream in STREAMS:
            pipe.kill_stream(stream)
        keeper.paused.clear()
        back: dict[str, float] = {}

        def all_back() -> bool:
            for stream in STREAMS:
                if stream not in back and pipe.last_batch(stream) > before[stream]:
                    back[stream] = time.monotonic() - began
            return len(back) == len(STREAMS)

        wait_until(all_back, 300, "a new batch of every stream")
        for stream in STREAMS:
            RECOVERY.append({"fault": f"kill -9 stream {stream}", "recovery_s": round(back[stream], 1),
                             "detail": "all three at once; restart to first committed batch"})

        wait_until(lambda: all(_stall_recoveries(pipe, ex) for ex in names()), 180,
                   "a stall and the watchdog's reconnect on every exchange")
        for exchange in names():
            worst = max(_stall_recoveries(pipe, exchange))
            RECOVERY.append({"fault": f"exchange stall ({exchange})", "recovery_s": round(worst + WATCHDOG_S, 1),
                             "detail": f"worst of the stalls: {WATCHDOG_S:g} s watchdog + reconnect"})

        wait_for_market(sim, 40, "the market runs on after the recoveries", 120)
        sim.stop()
        assert pipe.stop_workers() == 0
        expected, tolerated = market_trades(str(record), possible_loss_windows(stack.kafka_bootstrap, pipe.dlq_topic))
        shared.expect(PHASE, expected, tolerated)
        try:
            wait_until(lambda: set(expected) <= set(pipe.gold().column("message_id").to_pylist()), 300,
                       "Gold complete", interval=5)
        except TimeoutError:
            pass  # the test below says exactly what is missing
        gold_ids = set(pipe.gold().column("message_id").to_pylist())
        lost = {m: e for m, e in expected.items() if m not in gold_ids}
        yield {"pipe": pipe, "expected": expected, "where_lost": _where_lost(pipe, lost) if lost else {}}
    finally:
        sim.stop()
        pipe.stop_workers()
        for module in (kafka, registry):  # never leave the shared stack broken
            if module.service(s).state() != "running":
                module.service(s).start()
        report = Path(s.home) / "reports" / "fault_matrix.json"
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(RECOVERY, indent=2))


def test_gold_is_exactly_complete_after_every_fault(faults_run, shared: SharedPipeline):
    gold = faults_run["pipe"].gold().to_pylist()
    problems = shared.gold_problems(PHASE, gold)
    assert problems == {"duplicated": [], "missing": [], "unexpected": []}, (
        f"{ {k: len(v) for k, v in problems.items()} }, e.g. {problems['missing'][:10]}; "
        f"furthest layer each missing trade reached: {faults_run['where_lost']}")
    for row in gold:
        exp = faults_run["expected"].get(row["message_id"])
        if exp is None:
            continue  # another phase's trade (checked by that phase)
        assert (row["trade_id"], row["price"], row["quantity"], row["side"]) == (
            exp["trade_id"], exp["price"], exp["quantity"], exp["side"])


def test_every_fault_was_injected_and_recovered(faults_run):
    faults = [r["fault"] for r in RECOVERY]
    assert faults[:2] == ["kill -9 kafka + restart", "kill -9 registry + restart"]
    assert [f for f in faults if f.startswith("kill -9 worker")] == [f"kill -9 worker {n}" for n in names()]
    assert [f for f in faults if f.startswith("kill -9 stream")] == [f"kill -9 stream {s}" for s in STREAMS]
    assert all(f"exchange stall ({n})" in faults for n in names())
