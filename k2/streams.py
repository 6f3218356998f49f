"""Where each long-running stream keeps its checkpoint, lock and published progress.

The streams (spark_jobs) write; the babysitter (plugins) and operators (`k2 streams`)
read. Layout under ``K2_CHECKPOINT_ROOT`` (default ``$K2_HOME/checkpoints``)::

    <root>/<stream>/checkpoint/   Spark's checkpoint (offsets/, commits/, ...)
    <root>/<stream>/progress.json last batch, written after every batch (atomic rename)
    <root>/<stream>/run.lock      held (flock) by the one running copy of the stream
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from k2.contracts import STREAMS
from k2.settings import PlatformSettings, platform


def stream_dir(stream: str, settings: PlatformSettings | None = None) -> Path:
    if stream not in STREAMS:
        raise KeyError(f"unknown stream {stream!r}; known: {', '.join(STREAMS)}")
    return Path((settings or platform()).checkpoint_root) / stream


def checkpoint_dir(stream: str, settings: PlatformSettings | None = None) -> Path:
    return stream_dir(stream, settings) / "checkpoint"


def progress_file(stream: str, settings: PlatformSettings | None = None) -> Path:
    return stream_dir(stream, settings) / "progress.json"


def lock_file(stream: str, settings: PlatformSettings | None = None) -> Path:
    return stream_dir(stream, settings) / "run.lock"


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

    def age_seconds(self, now: float | None = None) -> float:
        return (now or time.time()) - self.updated_at


def write_progress(progress: StreamProgress, settings: PlatformSettings | None = None) -> None:
    path = progress_file(progress.stream, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(progress), sort_keys=True))
    os.replace(tmp, path)


def read_progress(stream: str, settings: PlatformSettings | None = None) -> StreamProgress | None:
    try:
        data = json.loads(progress_file(stream, settings).read_text())
    except (OSError, ValueError):
        return None
    return StreamProgress(**data)


class AlreadyRunning(RuntimeError):
    pass


def hold_run_lock(stream: str, settings: PlatformSettings | None = None):
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


def lock_holder(stream: str, settings: PlatformSettings | None = None) -> int | None:
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


def stop_stream(stream: str, settings: PlatformSettings | None = None, timeout_s: float = 60,
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
