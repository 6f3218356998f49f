"""Where a micro-batch's time goes: Spark's own phases plus the stream's, per batch.

Spark's progress gives, per micro-batch, the time of its fixed steps (``durationMs``):
asking the sources for their latest offsets, writing the offset log, planning, running
the sink (``addBatch``: for a ``foreachBatch`` stream, the stream's own function), and
writing the commit log. The stream's function times its own phases (decode and
validate, each table commit, Gold's MERGE) with :class:`BatchTimings`. The progress
reporter (spark_jobs/streaming.py) joins the two with the time the stream sat idle
waiting for its trigger, publishes the breakdown in the stream's progress (shown by
`k2 streams status`, sampled by `make bench`) and logs it on the batch's line.

Every figure is in seconds; the names are stable (``k2.streams.SPARK_PHASES``, then
the stream's phases in the order it ran them).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from k2.streams import OTHER, SPARK_PHASES, TOTAL, TRIGGER_WAIT

KEEP_BATCHES = 10  # phases kept for batches the reporter has not reported yet


class BatchTimings:
    """The stream's own phases per batch id, filled by its ``foreachBatch`` function and
    taken by the progress reporter (both run in the driver's Python process)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock  # seconds; tests inject a fake one
        self._phases: dict[int, dict[str, float]] = {}

    @contextmanager
    def phase(self, batch_id: int, name: str) -> Iterator[None]:
        began = self._clock()
        try:
            yield
        finally:
            phases = self._phases.setdefault(batch_id, {})
            phases[name] = phases.get(name, 0.0) + self._clock() - began
            for old in [b for b in self._phases if b < batch_id - KEEP_BATCHES]:
                del self._phases[old]

    def take(self, batch_id: int) -> dict[str, float]:
        return self._phases.pop(batch_id, {})


def epoch_ms(timestamp: str) -> float | None:
    try:
        return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000
    except (ValueError, AttributeError):
        return None


def breakdown(progress: dict, previous_end_ms: float | None, stream_phases: dict[str, float]) -> dict[str, float]:
    """The batch's phases in seconds (see the module doc), from Spark's progress JSON, the
    end of the previous batch (epoch ms; None for a process's first batch) and the
    stream's own phases."""
    durations = progress.get("durationMs") or {}
    out: dict[str, float] = {}
    started = epoch_ms(progress.get("timestamp", ""))
    if started is not None and previous_end_ms is not None:
        out[TRIGGER_WAIT] = max(0.0, (started - previous_end_ms) / 1000)
    for key, name in SPARK_PHASES.items():
        if key in durations:
            out[name] = durations[key] / 1000
    out.update(stream_phases)
    if stream_phases and "addBatch" in durations:  # the sink's time outside the stream's phases
        out[OTHER] = max(0.0, durations["addBatch"] / 1000 - sum(stream_phases.values()))
    if "triggerExecution" in durations:
        out[TOTAL] = durations["triggerExecution"] / 1000
    return {k: round(v, 3) for k, v in out.items()}


def batch_end_ms(progress: dict) -> float | None:
    """When the batch ended (epoch ms): its trigger time plus Spark's triggerExecution."""
    started = epoch_ms(progress.get("timestamp", ""))
    took = (progress.get("durationMs") or {}).get("triggerExecution")
    return None if started is None or took is None else started + took
