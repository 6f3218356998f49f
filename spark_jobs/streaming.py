"""What every K2 stream shares: run lock, checkpoint, progress publishing, clean stop.

A stream module only builds its ``DataStreamWriter``; :func:`run_stream` takes the
stream's run lock (never two copies, even when the babysitter races an operator),
starts the query on the stream's own checkpoint and waits, polling the query's progress
(:class:`ProgressPoller`) into the progress reporter (which also feeds the metrics the
driver serves to Prometheus, spark_jobs/stream_metrics.py). SIGTERM/SIGINT stop the
query between batches; ``kill -9`` is what the checkpoint exists for.

Why polling rather than a ``StreamingQueryListener``: a Python listener is called back
over py4j for every event, and each callback cost the driver JVM about 0.2 CPU-s (class
lookups that miss across the whole classpath); with a 2 s trigger that was a quarter
of a core per stream. Reading ``lastProgress`` twice a second costs almost nothing.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import DataStreamWriter

from k2.log import EventLog, job_log
from k2.settings import PlatformSettings
from k2.streams import (
    AlreadyRunning,
    LostRange,
    StreamProgress,
    checkpoint_dir,
    hold_run_lock,
    read_losses,
    record_losses,
    write_progress,
)
from spark_jobs.batch_timing import BatchTimings, batch_end_ms, breakdown
from spark_jobs.stream_metrics import StreamMetrics, serve

# A stream's check of one progress JSON for source data deleted before it was read
# (see bronze_ingestion.losses_from_progress).
LossCheck = Callable[[dict], list[LostRange]]


def _offsets(value: object) -> object:
    # Progress JSON carries Kafka offsets as nested objects; older Sparks as JSON text.
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def kafka_lag(source: dict) -> int | None:
    """Messages between the batch's end offsets and the latest offsets, summed over partitions."""
    end, latest = _offsets(source.get("endOffset")), _offsets(source.get("latestOffset"))
    if not isinstance(end, dict) or not isinstance(latest, dict):
        return None
    lag = 0
    for topic, parts in latest.items():
        for part, offset in parts.items():
            lag += max(0, int(offset) - int(end.get(topic, {}).get(part, 0)))
    return lag


def progress_from_json(stream: str, progress: dict, rows_in: int | None = None) -> StreamProgress:
    """``rows_in``: the batch's input rows as the stream counted them itself, when Spark's
    per-source figures cannot be trusted (see :class:`ProgressReporter`)."""
    sources = progress.get("sources") or []
    lags = [kafka_lag(s) for s in sources if "Kafka" in (s.get("description") or "")]
    known = [lag for lag in lags if lag is not None]
    return StreamProgress(
        stream=stream,
        batch_id=int(progress.get("batchId", -1)),
        batch_timestamp=progress.get("timestamp", ""),
        rows_in=int(progress.get("numInputRows", 0)) if rows_in is None else rows_in,
        rows_per_second=_rows_per_second(progress, rows_in),
        source_lag=sum(known) if known else None,
        pid=os.getpid(),
        sources=[
            {"description": s.get("description"), "rows_in": s.get("numInputRows") if rows_in is None else None,
             "end_offset": s.get("endOffset"), "latest_offset": s.get("latestOffset")}
            for s in sources
        ],
    )


def _rows_per_second(progress: dict, rows_in: int | None) -> float:
    rate = float(progress.get("processedRowsPerSecond") or 0.0)
    spark_rows = int(progress.get("numInputRows") or 0)
    if rows_in is None or not spark_rows:
        return rate
    return rate * rows_in / spark_rows  # same batch duration, the stream's own row count


class ProgressReporter:
    """Publishes k2.streams progress after every batch; idle triggers refresh its age.
    Fed by :class:`ProgressPoller` (one call per batch, in batch order).

    ``rows_in_of_batch``: for a foreachBatch stream over several Iceberg sources, Spark
    4.1 reports every source with the rows of all of them (Gold's two Silver tables each
    showed the batch's total, doubling rows in), so such a stream counts its input
    itself and the reporter publishes that count instead.

    ``find_losses``: for a Kafka stream, finds offsets Kafka deleted before the batch read
    them; each range is logged as an ERROR, appended to the stream's loss ledger and
    published in the progress, with the running totals of the ledger.

    ``metrics``: the stream's Prometheus metrics, updated from each published progress.
    """

    def __init__(self, stream: str, settings: PlatformSettings,
                 rows_in_of_batch: Callable[[int], int | None] | None = None,
                 find_losses: LossCheck | None = None, timings: BatchTimings | None = None,
                 metrics: StreamMetrics | None = None):
        self.stream = stream
        self.log: EventLog = job_log(stream)
        self.timings = timings
        self.previous_end_ms: float | None = None  # when the last reported batch ended
        self.settings = settings
        self.rows_in_of_batch = rows_in_of_batch
        self.find_losses = find_losses
        self.last: StreamProgress | None = None
        known = read_losses(stream, settings) if find_losses else []
        self.lost_offsets, self.lost_ranges = sum(r.count for r in known), len(known)
        self.metrics = metrics
        if metrics:
            metrics.known_losses(self.lost_offsets, self.lost_ranges)

    def _check_losses(self, raw: dict, progress: StreamProgress) -> None:
        try:
            lost = self.find_losses(raw) if self.find_losses else []
        except Exception as exc:  # noqa: BLE001 - a broken check must not stop progress reports
            self.log.error("data_loss_check_failed", batch_id=progress.batch_id, error=repr(exc))
            return
        if lost:
            record_losses(self.stream, lost, self.settings)
            self.lost_offsets += sum(r.count for r in lost)
            self.lost_ranges += len(lost)
        for r in lost:
            self.log.error("data_lost", batch_id=progress.batch_id, topic=r.topic, partition=r.partition,
                           first_offset=r.first_offset, last_offset=r.end_offset - 1, records=r.count,
                           detail=f"Kafka deleted {r.describe()} before this stream read them; "
                                  "they are not in Bronze",
                           action="raise the topic's retention.ms or keep the stream running "
                                  "(see `k2 streams status`)")
        progress.data_loss = [asdict(r) for r in lost]
        progress.lost_offsets_total, progress.lost_ranges_total = self.lost_offsets, self.lost_ranges

    def batch(self, raw: dict) -> None:
        """One batch's ``StreamingQueryProgress`` JSON (as a dict)."""
        counted = self.rows_in_of_batch(int(raw.get("batchId", -1))) if self.rows_in_of_batch else None
        progress = progress_from_json(self.stream, raw, counted)
        own = self.timings.take(progress.batch_id) if self.timings else {}
        progress.breakdown = breakdown(raw, self.previous_end_ms, own)
        self.previous_end_ms = batch_end_ms(raw)
        if self.find_losses:
            self._check_losses(raw, progress)
        self.last = progress
        write_progress(progress, self.settings)
        if self.metrics:
            self.metrics.observe(progress)
        if progress.rows_in or progress.batch_id == 0:
            self.log.info("batch", batch_id=progress.batch_id, rows_in=progress.rows_in,
                          rows_per_second=round(progress.rows_per_second), lag=progress.source_lag,
                          phases_s={k: round(v, 2) for k, v in progress.breakdown.items()})

    def idle(self) -> None:
        """The query waits for its next trigger: it is alive, with nothing new to report."""
        if self.last is not None:
            self.last.updated_at = time.time()
            write_progress(self.last, self.settings)
        if self.metrics:
            self.metrics.idle()

    def terminated(self, error: object | None) -> None:
        if error is not None:
            self.log.error("query_terminated", error=str(error))
            if self.metrics:
                self.metrics.query_failed()
        else:
            self.log.info("query_terminated")


class QueryProgress:
    """What :class:`ProgressPoller` reads of a running ``StreamingQuery``, as plain JSON.

    Through the query's JVM handle: pyspark's ``lastProgress``/``recentProgress`` wrap the
    JSON in ``StreamingQueryProgress`` objects whose nested values are not the plain
    dicts the reporter (and the loss check) read.
    """

    def __init__(self, query):
        self.query = query

    def last(self) -> dict | None:
        progress = self.query._jsq.lastProgress()
        return json.loads(progress.json()) if progress else None

    def recent(self) -> list[dict]:
        return [json.loads(p.json()) for p in self.query._jsq.recentProgress()]

    def trigger_active(self) -> bool:
        return bool(json.loads(self.query._jsq.status().json()).get("isTriggerActive", True))


class ProgressPoller:
    """Feeds a :class:`ProgressReporter` from a running query's progress (a
    :class:`QueryProgress`).

    ``poll`` is called from the driver's main thread between short waits. Each new
    batch is reported once, in order: when more than one batch ended since the last
    poll (or before the first), the ones in between come from the recent progress,
    which holds the last 100 batches of this query run. A query waiting for its next
    trigger (no trigger active) counts as idle, at most once per ``idle_every_s``; a
    batch that hangs is not idle, so its age grows and the babysitter sees the stall.
    """

    def __init__(self, reporter: ProgressReporter, idle_every_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic):
        self.reporter = reporter
        self.idle_every_s = idle_every_s
        self.clock = clock
        self._last_key: tuple[int, str] | None = None  # (batchId, timestamp) last reported
        self._idle_at = float("-inf")

    @staticmethod
    def _key(raw: dict) -> tuple[int, str]:
        return int(raw.get("batchId", -1)), str(raw.get("timestamp", ""))

    def poll(self, source: QueryProgress) -> int:
        """Report what is new; return how many batches were reported."""
        latest = source.last()
        if latest and self._key(latest) != self._last_key:
            todo = [latest]
            if self._last_key is None or self._key(latest)[0] > self._last_key[0] + 1:
                # Batches ended since the last poll (or since this run started: the buffer
                # holds this query run's batches only, so a restart reports none twice).
                todo = sorted((p for p in source.recent()
                               if self._last_key is None or self._key(p) > self._last_key), key=self._key)
            for raw in todo:
                self.reporter.batch(raw)
                self._last_key = self._key(raw)
            return len(todo)
        now = self.clock()
        if now - self._idle_at >= self.idle_every_s and not source.trigger_active():
            self._idle_at = now
            self.reporter.idle()
        return 0

    def poll_safely(self, source: QueryProgress) -> None:
        """:meth:`poll`, logging instead of raising: a failed progress read (the query's JVM
        side going away) must not hide the query's own outcome, which the caller reports."""
        try:
            self.poll(source)
        except Exception as exc:  # noqa: BLE001 - see above
            self.reporter.log.warning("progress_poll_failed", error=repr(exc)[:500])


def iceberg_stream(spark: SparkSession, table: str, max_rows: int | None = None) -> DataFrame:
    """A streaming read of an Iceberg table that survives retention and compaction commits."""
    reader = (
        spark.readStream.format("iceberg")
        .option("streaming-skip-delete-snapshots", "true")
        .option("streaming-skip-overwrite-snapshots", "true")
    )
    if max_rows:
        reader = reader.option("streaming-max-rows-per-micro-batch", str(max_rows))
    return reader.load(table)


# Spark 4.1.1's Kafka source throws a NullPointerException while reporting progress of
# the first batch after a restart that replays a planned-but-uncommitted batch (a
# regression of SPARK-54027, apache/spark#55236). The batch itself is already committed
# (commit log and sink) when the report fails, so starting the query again continues
# correctly; the same failure twice in a row is a real problem and is not retried.
REPLAY_NPE_RETRIES = 1


def _is_replay_progress_npe(error: object) -> bool:
    text = str(error)
    return 'return value of "scala.Option.get()" is null' in text and "IterableOps.map" in text


POLL_S = 0.5  # between two progress polls; also how soon a stop signal is acted on


def _wait(query, stopping: Callable[[], bool], poller: ProgressPoller):
    """Wait until the query ends or a stop is requested, reporting its progress;
    return its exception, if any."""
    from pyspark.errors import StreamingQueryException

    # Short waits so a signal is acted on promptly (py4j blocks the main thread).
    source = QueryProgress(query)
    try:
        while query.isActive and not stopping():
            poller.poll_safely(source)
            query.awaitTermination(POLL_S)
    except StreamingQueryException:
        pass
    poller.poll_safely(source)  # the last batches before the end
    return query.exception()


def run_stream(
    settings: PlatformSettings,
    stream: str,
    app: Callable[[SparkSession], DataStreamWriter],
    trigger: dict[str, object],
    table: str | None = None,
    rows_in_of_batch: Callable[[int], int | None] | None = None,
    find_losses: LossCheck | None = None,
    timings: BatchTimings | None = None,
) -> int:
    """Run one stream to completion (availableNow) or until stopped; return an exit code.

    ``table``: the Iceberg table of a sink query (``toTable``); None for foreachBatch.
    ``rows_in_of_batch``: the stream's own input count per batch id (ProgressReporter).
    ``find_losses``: the stream's check for source data deleted unread (ProgressReporter).
    ``timings``: the stream's own phases per batch (spark_jobs/batch_timing.py).
    """
    from spark_jobs.session import spark_session

    log = job_log(stream)
    try:
        lock = hold_run_lock(stream, settings)  # noqa: F841 - held for the life of the process
    except AlreadyRunning as exc:
        log.warning("not_started", reason=str(exc))
        return 2
    metrics = StreamMetrics(stream)
    serve(metrics, settings.bind_host, settings.stream_metrics_port(stream), log)  # a daemon thread: lives with the driver
    spark = spark_session(stream)
    reporter = ProgressReporter(stream, settings, rows_in_of_batch, find_losses, timings=timings, metrics=metrics)
    checkpoint = checkpoint_dir(stream, settings)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)

    stopping = False

    def stop(signum, frame) -> None:  # noqa: ARG001
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for attempt in range(1, REPLAY_NPE_RETRIES + 2):
        writer = (
            app(spark)
            .queryName(stream)
            .option("checkpointLocation", str(checkpoint))
            .trigger(**trigger)
        )
        query = writer.toTable(table) if table else writer.start()
        log.info("query_started", query_id=str(query.id), run_id=str(query.runId))
        log.info("running", checkpoint=str(checkpoint), trigger=trigger, attempt=attempt)
        poller = ProgressPoller(reporter)
        error = _wait(query, lambda: stopping, poller)
        if stopping:
            log.info("stop_requested", detail="stopping after the current batch")
            query.stop()
            poller.poll_safely(QueryProgress(query))
            error = query.exception()
        reporter.terminated(error)
        if error is not None and _is_replay_progress_npe(error) and attempt <= REPLAY_NPE_RETRIES:
            log.warning("query_restarting", reason="Spark 4.1.1 failed reporting a replayed batch "
                        "(apache/spark#55236)", detail="the batch is committed, starting the query "
                        "again from the checkpoint")
            continue
        break
    spark.stop()
    if error is not None:
        log.error("failed", error=str(error))
        return 1
    log.info("stopped_cleanly")
    return 0

