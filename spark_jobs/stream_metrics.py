"""A stream's progress as Prometheus metrics, served by its driver over HTTP.

The progress reporter (spark_jobs/streaming.py) hands every published
:class:`~k2.streams.StreamProgress` to :meth:`StreamMetrics.observe`: a few counter
increments and histogram observations in the driver's Python process, from figures the
reporter already has (no call into the JVM). :func:`serve` starts the HTTP server once
per driver on ``K2_<STREAM>_METRICS_PORT`` at ``K2_BIND_HOST``; a port already taken is
logged as a warning and the stream runs on without metrics.

Every series has the label ``stream``; batch durations also ``phase`` (the breakdown's
names: Spark's phases, the stream's own phases inside the sink, ``trigger_wait`` and
``total``; see spark_jobs/batch_timing.py). Source lag exists for Kafka sources only
(Bronze): for an Iceberg source Spark's progress holds snapshot ids, and counting the
snapshots between two of them would cost a catalog read per batch, so Silver and Gold
export no lag series; ``k2_stream_last_batch_timestamp_seconds`` tells how fresh they are.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from k2.log import EventLog
from k2.streams import StreamProgress
from spark_jobs.batch_timing import epoch_ms

# Phases run from milliseconds (offset log) to minutes (a large MERGE after a restart).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class StreamMetrics:
    """One stream's metrics in a registry of their own (nothing else of the process's)."""

    def __init__(self, stream: str, clock: Callable[[], float] = time.time) -> None:
        self.stream = stream
        self._clock = clock
        self.registry = CollectorRegistry()
        r, by_stream = self.registry, ["stream"]

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, by_stream, registry=r).labels(stream)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, by_stream, registry=r).labels(stream)

        self.batches = counter("k2_stream_batches", "Micro-batches completed (their progress published).")
        self.failed = counter("k2_stream_batches_failed",
                              "Queries ended by an error: the batch running then failed (the driver exits "
                              "or restarts the query; see k2_stream_started_timestamp_seconds).")
        self.rows = counter("k2_stream_rows_in", "Input rows of completed micro-batches.")
        self.lost_offsets = counter("k2_stream_lost_offsets",
                                    "Kafka offsets deleted before the stream read them (the loss ledger's total).")
        self.lost_ranges = counter("k2_stream_lost_ranges", "Offset ranges in the stream's loss ledger.")
        self.batch_rows = gauge("k2_stream_last_batch_rows", "Input rows of the last micro-batch.")
        self.rows_per_second = gauge("k2_stream_last_batch_rows_per_second",
                                     "Input rows per second of the last micro-batch, over its duration.")
        self.batch_id = gauge("k2_stream_last_batch_id", "Id of the last completed micro-batch.")
        self.batch_time = gauge("k2_stream_last_batch_timestamp_seconds",
                                "Trigger time of the last completed micro-batch (epoch seconds).")
        self.progress_time = gauge("k2_stream_last_progress_timestamp_seconds",
                                   "Last progress or idle report of the query (epoch seconds): it is alive.")
        gauge("k2_stream_started_timestamp_seconds", "When this driver started (epoch seconds).").set(clock())
        self._lag = Gauge("k2_stream_source_lag_records",
                          "Kafka records between the last batch's end offsets and the latest ones "
                          "(Kafka sources only).", by_stream, registry=r)
        self._durations = Histogram("k2_stream_batch_duration_seconds",
                                    "Time of a micro-batch (phase total) and of each phase of it.",
                                    ["stream", "phase"], buckets=DURATION_BUCKETS, registry=r)
        self._last_batch: int | None = None
        self._lost = (0, 0)

    def observe(self, progress: StreamProgress) -> None:
        """Account for one published progress (the reporter calls it after every batch)."""
        self.progress_time.set(self._clock())
        self._count_losses(progress.lost_offsets_total, progress.lost_ranges_total)
        if progress.batch_id == self._last_batch:  # the same batch reported again: nothing new ran
            return
        self._last_batch = progress.batch_id
        self.batches.inc()
        self.rows.inc(max(0, progress.rows_in))
        self.batch_rows.set(progress.rows_in)
        self.rows_per_second.set(progress.rows_per_second)
        self.batch_id.set(progress.batch_id)
        started = epoch_ms(progress.batch_timestamp)
        if started is not None:
            self.batch_time.set(started / 1000)
        if progress.source_lag is not None:
            self._lag.labels(self.stream).set(progress.source_lag)
        for phase, seconds in progress.breakdown.items():
            self._durations.labels(self.stream, phase).observe(seconds)

    def _count_losses(self, offsets: int, ranges: int) -> None:
        seen_offsets, seen_ranges = self._lost
        self.lost_offsets.inc(max(0, offsets - seen_offsets))
        self.lost_ranges.inc(max(0, ranges - seen_ranges))
        self._lost = (max(offsets, seen_offsets), max(ranges, seen_ranges))

    def known_losses(self, offsets: int, ranges: int) -> None:
        """The loss ledger's totals when the stream starts (earlier runs' losses)."""
        self._count_losses(offsets, ranges)

    def idle(self) -> None:
        self.progress_time.set(self._clock())

    def query_failed(self) -> None:
        self.failed.inc()


def serve(metrics: StreamMetrics, host: str, port: int, log: EventLog):
    """Serve ``metrics`` at http://host:port/metrics from a daemon thread; returns the
    server, or None when the port is 0 (off) or cannot be bound (a warning: the stream
    itself runs on)."""
    if not port:
        return None
    try:
        server, _ = start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as exc:
        log.warning("metrics_not_served", host=host, port=port, error=str(exc),
                    detail="the stream runs without its Prometheus endpoint",
                    action=f"free the port or set K2_{metrics.stream.upper()}_METRICS_PORT (0: off)")
        return None
    log.info("metrics_served", url=f"http://{host}:{port}/metrics")
    return server
