"""Each section of the health page degrades on its own: a source that fails or hangs
costs only its section, and the page answers within the deadline
(plugins/k2_airflow/health/collect.py), with stand-in sources."""

from __future__ import annotations

import threading
import time

from k2_airflow.health.collect import Collector


class FakeSources(Collector):
    def __init__(self, readers: dict, deadline_s: float) -> None:
        super().__init__(settings=None, deadline_s=deadline_s)
        self.fakes = readers

    def readers(self, now, deadline):
        return self.fakes


def _boom():
    raise ConnectionError("broker down")


def _missing():
    raise LookupError("table market_data.silver_dlq does not exist yet: the bootstrap DAG creates it")


def test_a_failing_source_gives_its_reason_and_the_others_their_data():
    snap = FakeSources({"streams": lambda: [1, 2], "kafka_dlq": _boom, "silver_dlq": _missing}, 2.0).snapshot()
    assert snap["streams"]["ok"] and snap["streams"]["data"] == [1, 2]
    assert snap["kafka_dlq"] == {"ok": False, "reason": "ConnectionError: broker down"}
    assert snap["silver_dlq"] == {"ok": False, "reason": "table market_data.silver_dlq does not exist yet: "
                                                       "the bootstrap DAG creates it"}


def test_a_hanging_source_misses_the_deadline_alone_and_its_late_answer_shows_next_time():
    release = threading.Event()
    calls = []

    def slow():
        calls.append(1)
        release.wait(5)
        return "late"

    collector = FakeSources({"heatmap": slow, "streams": lambda: "fast"}, 0.3)
    began = time.monotonic()
    first = collector.snapshot()
    assert time.monotonic() - began < 1.0
    assert first["streams"]["data"] == "fast"
    assert first["heatmap"] == {"ok": False, "reason": "no answer within 0.3 s (still reading; shown at the next refresh)"}
    release.set()
    time.sleep(0.1)
    second = collector.snapshot()
    assert second["heatmap"]["data"] == "late"  # the read started by the first poll, not a new one
    assert len(calls) == 1
    third = collector.snapshot()  # shown once: the next poll reads afresh
    assert third["heatmap"]["data"] == "late" and len(calls) == 2
