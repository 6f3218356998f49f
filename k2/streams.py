"""Where each long-running stream keeps its checkpoint, lock and published progress.

The streams (spark_jobs) write; the babysitter (plugins) and operators (`k2 streams`)
read. Layout under ``K2_CHECKPOINT_ROOT`` (default ``$K2_HOME/checkpoints``)::

    <root>/<stream>/checkpoint/   Spark's checkpoint (offsets/, commits/, ...)
    <root>/<stream>/progress.json last batch, written after every batch (atomic rename)
    <root>/<stream>/run.lock      held (flock) by the one running copy of the stream
    <root>/<stream>/data_loss.jsonl  every offset range Kafka deleted before the stream read
                                  it, one JSON line per range, appended, never rewritten

A running stream's driver also serves its progress as Prometheus metrics at
:func:`metrics_url` (spark_jobs/stream_metrics.py).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from k2 import contracts
from k2.contracts import STREAMS
from k2.errors import K2Error
from k2.settings import PlatformSettings


def stream_dir(stream: str, settings: PlatformSettings) -> Path:
    if stream not in STREAMS:
        raise KeyError(f"unknown stream {stream!r}; known: {', '.join(STREAMS)}")
    return Path(settings.checkpoint_root) / stream


def checkpoint_dir(stream: str, settings: PlatformSettings) -> Path:
    return stream_dir(stream, settings) / "checkpoint"


def progress_file(stream: str, settings: PlatformSettings) -> Path:
    return stream_dir(stream, settings) / "progress.json"


def lock_file(stream: str, settings: PlatformSettings) -> Path:
    return stream_dir(stream, settings) / "run.lock"


def loss_file(stream: str, settings: PlatformSettings) -> Path:
    return stream_dir(stream, settings) / "data_loss.jsonl"


def metrics_url(stream: str, settings: PlatformSettings) -> str | None:
    """Where the stream's running driver serves Prometheus metrics; None when it serves none
    (``K2_<STREAM>_METRICS_PORT=0``). A wildcard bind host is shown as localhost."""
    port = settings.stream_metrics_port(stream)
    if not port:
        return None
    host = "localhost" if settings.bind_host in ("0.0.0.0", "::") else settings.bind_host
    return f"http://{host}:{port}/metrics"


def source_tables(stream: str) -> list[str]:
    """The Iceberg tables a stream reads (bronze_ingestion reads Kafka: none)."""
    if stream == "silver_transformation":
        return [contracts.BRONZE_TABLE]
    if stream == "gold_aggregation":
        return [contracts.silver_table(e.name) for e in contracts.EXCHANGES]
    return []


def readers_of(table: str) -> list[str]:
    """The streams whose checkpoints hold a position in ``table`` (retention must respect them)."""
    return [s for s in STREAMS if table in source_tables(s)]


# -- where a batch's time went (written by spark_jobs/batch_timing.py) ---------------

# Spark's durationMs keys -> our names, in the order a micro-batch runs them.
SPARK_PHASES = {
    "latestOffset": "source_offsets",  # ask each source for its latest offset/snapshot
    "walCommit": "offset_log",  # write the batch's offsets to the checkpoint
    "queryPlanning": "planning",
    "getBatch": "source_read",  # build the batch's DataFrame from the sources
    "addBatch": "sink",  # the sink: for foreachBatch, the stream's function (phases below)
    "commitOffsets": "commit_log",  # mark the batch done in the checkpoint
}
TRIGGER_WAIT = "trigger_wait"  # idle from the previous batch's end to this batch's trigger
TOTAL = "total"  # Spark's triggerExecution: the batch from trigger to commit log
OTHER = "other"  # the sink's time outside the stream's own phases (Spark's and Python's glue)


def describe_breakdown(phases: dict[str, float]) -> str:
    """One line: ``trigger_wait 2.10 s, source_offsets 0.10 s, ... total 3.20 s``, Spark's
    phases in the order a batch runs them, the stream's own (inside ``sink``, in the
    order it ran them) in brackets after it."""
    order = [TRIGGER_WAIT, *SPARK_PHASES.values(), TOTAL]
    own = [f"{k} {v:.2f}" for k, v in phases.items() if k not in order]
    parts = []
    for name in order:
        if name in phases:
            parts.append(f"{name} {phases[name]:.2f} s" + (f" [{', '.join(own)}]" if name == "sink" and own else ""))
    return ", ".join(parts)


@dataclass
class StreamProgress:
    """What a stream reports after each micro-batch."""

    stream: str
    batch_id: int
    batch_timestamp: str  # Spark's trigger time of the batch (ISO 8601, UTC)
    rows_in: int
    rows_per_second: float
    source_lag: int | None  # Kafka: messages behind latest; Iceberg sources: None
    pid: int
    updated_at: float = field(default_factory=time.time)  # epoch seconds of the write
    sources: list[dict] = field(default_factory=list)
    # Offsets Kafka deleted before the stream read them: this batch's ranges, and the
    # totals over the stream's life (from data_loss.jsonl), so a loss stays visible
    # after later batches overwrite this file.
    data_loss: list[dict] = field(default_factory=list)
    lost_offsets_total: int = 0
    lost_ranges_total: int = 0
    # Where the batch's time went, in seconds: Spark's phases, the stream's own phases
    # inside the sink, and the idle wait for the trigger (spark_jobs/batch_timing.py).
    breakdown: dict[str, float] = field(default_factory=dict)

    def age_seconds(self, now: float | None = None) -> float:
        return (now or time.time()) - self.updated_at


def write_progress(progress: StreamProgress, settings: PlatformSettings) -> None:
    path = progress_file(progress.stream, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(progress)))  # in field order: the breakdown's order is the batch's
    os.replace(tmp, path)


def read_progress(stream: str, settings: PlatformSettings) -> StreamProgress | None:
    try:
        data = json.loads(progress_file(stream, settings).read_text())
    except (OSError, ValueError):
        return None
    return StreamProgress(**data)


@dataclass(frozen=True)
class LostRange:
    """Offsets ``[first_offset, end_offset)`` of one partition, deleted by Kafka unread."""

    topic: str
    partition: int
    first_offset: int
    end_offset: int  # exclusive
    batch_id: int = -1  # the micro-batch that found the gap
    detected_at: float = 0.0  # epoch seconds

    @property
    def count(self) -> int:
        return self.end_offset - self.first_offset

    def describe(self) -> str:
        return (f"{self.topic}[{self.partition}] offsets {self.first_offset}..{self.end_offset - 1} "
                f"({self.count} records)")


def record_losses(stream: str, ranges: list[LostRange], settings: PlatformSettings) -> None:
    """Append ``ranges`` to the stream's loss ledger (append-only: the history is the report)."""
    if not ranges:
        return
    path = loss_file(stream, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as out:
        out.writelines(json.dumps(asdict(r), sort_keys=True) + "\n" for r in ranges)


def read_losses(stream: str, settings: PlatformSettings) -> list[LostRange]:
    """Every range in the stream's loss ledger, oldest first; a torn last line is skipped."""
    try:
        lines = loss_file(stream, settings).read_text().splitlines()
    except OSError:
        return []
    ranges = []
    for line in lines:
        try:
            ranges.append(LostRange(**json.loads(line)))
        except (ValueError, TypeError):
            continue
    return ranges


class AlreadyRunning(K2Error, RuntimeError):
    pass


def hold_run_lock(stream: str, settings: PlatformSettings):
    """Take the stream's exclusive lock for the life of the process (never two copies).

    Returns the open file; keep a reference to it. Raises :class:`AlreadyRunning`
    naming the holder's pid if another copy runs.
    """
    path = lock_file(stream, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - held open for the process lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise AlreadyRunning(
            f"stream {stream} is already running (pid {holder}); stop it first or let the "
            "babysitter manage it"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def lock_holder(stream: str, settings: PlatformSettings) -> int | None:
    """The pid holding the stream's lock, or None if no copy is running."""
    path = lock_file(stream, settings)
    if not path.exists():
        return None
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            text = handle.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None


def stop_stream(stream: str, settings: PlatformSettings, timeout_s: float = 60,
                graceful_s: float = 0.0) -> bool:
    """Stop the running copy; returns True once its run lock is free.

    ``graceful_s`` > 0: SIGTERM first, so the stream stops between batches and exits 0
    (its Airflow runner run then ends as a success and is not retried); after that long
    it is killed. Otherwise SIGKILL of its process group (spark-submit JVM and Python
    driver) at once: streams are built to survive ``kill -9`` (their checkpoint), and an
    Airflow runner task retries a killed stream within seconds. A stream sharing the
    caller's process group (started by hand from the same shell) is signalled alone,
    never the caller.
    """
    import signal

    def send(sig: int) -> None:
        try:
            group = os.getpgid(pid)
            if sig == signal.SIGTERM or group == os.getpgid(0):
                os.kill(pid, sig)  # SIGTERM: the driver alone, which stops its query cleanly
            else:
                os.killpg(group, sig)
        except ProcessLookupError:
            pass

    def released(within_s: float) -> bool:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if lock_holder(stream, settings) is None:
                return True
            time.sleep(0.5)
        return lock_holder(stream, settings) is None

    pid = lock_holder(stream, settings)
    if pid is None:
        return True
    if pid <= 0:
        return released(timeout_s)
    if graceful_s > 0:
        send(signal.SIGTERM)
        if released(graceful_s):
            return True
    send(signal.SIGKILL)
    return released(timeout_s)
