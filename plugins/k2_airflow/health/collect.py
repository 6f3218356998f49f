"""One snapshot of every section, each source read in its own thread under one deadline.

A source that fails gives its section ``{"ok": false, "reason": ...}``; one still
running at the deadline gives ``unavailable: no answer within ...`` and keeps running
in the background, so the page answers in time whatever hangs, and a slow source (the
first Iceberg read of a fresh api-server process) has its answer ready for the next
poll: a section's result is shown once, the poll after it arrives, with its age.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from datetime import datetime

from k2.settings import PlatformSettings

from . import shape, sources

DEADLINE_S = 1.5  # the page's JSON answers within this (the brief: under 2 s)

Section = dict  # {"ok": True, "data": ..., "took_s": ...} or {"ok": False, "reason": ...}


def ok(data: object, took_s: float) -> Section:
    return {"ok": True, "data": data, "took_s": round(took_s, 3)}


def unavailable(reason: str) -> Section:
    return {"ok": False, "reason": reason}


def run_section(read: Callable[[], object]) -> Section:
    """``read()`` as a section: its data, or why it is unavailable (never an exception)."""
    began = time.monotonic()
    try:
        return ok(read(), time.monotonic() - began)
    except LookupError as exc:  # a source saying what is missing: its message is the reason
        return unavailable(str(exc.args[0] if exc.args else exc)[:500])
    except Exception as exc:  # noqa: BLE001 - any failure of one source is that section's reason
        return unavailable(f"{type(exc).__name__}: {exc}".strip()[:500])


class Collector:
    """The sections of the page, read concurrently; one per api-server process."""

    def __init__(self, settings: PlatformSettings, deadline_s: float = DEADLINE_S) -> None:
        self.settings = settings
        self.deadline_s = deadline_s
        self._pool = ThreadPoolExecutor(max_workers=6, thread_name_prefix="k2-health")
        self._lock = threading.Lock()
        self._running: dict[str, Future] = {}
        self._shown: set[Future] = set()  # finished reads whose answer a poll has returned
        self._worker_samples: dict[str, shape.WorkerSample] = {}
        self._catalog = None

    def catalog(self):
        """The Iceberg catalog, made once (its engine and connection pool are reused)."""
        if self._catalog is None:
            from k2.catalog import catalog

            self._catalog = catalog(self.settings)
        return self._catalog

    def readers(self, now: datetime, deadline: float) -> dict[str, Callable[[], object]]:
        s = self.settings
        return {
            "streams": lambda: sources.streams(s),
            "workers": lambda: sources.workers(sources.worker_endpoints(s), self._worker_samples),
            "kafka_dlq": lambda: sources.kafka_dlq(s, deadline - 0.1),
            "silver_dlq": lambda: sources.silver_dlq(self.catalog(), now),
            "heatmap": lambda: sources.heatmap(self.catalog(), now),
            "dag_runs": lambda: sources.maintenance_runs(now),
        }

    def snapshot(self, now: datetime | None = None) -> dict:
        """Every section, as far as it got within the deadline."""
        now = now or sources.utc_now()
        began = time.monotonic()
        deadline = began + self.deadline_s
        readers = self.readers(now, deadline)
        with self._lock:  # one poll at a time starts a source; a source still running from before is reused
            futures = {name: self._start(name, read) for name, read in readers.items()}
        wait_for(list(futures.values()), timeout=max(0.0, deadline - time.monotonic()))
        sections = {}
        with self._lock:
            for name, future in futures.items():
                if future.done():
                    sections[name] = future.result()
                    self._shown.add(future)
                else:
                    sections[name] = unavailable(f"no answer within {self.deadline_s:g} s (still reading; "
                                                 "shown at the next refresh)")
        return {"generated_at": now.isoformat(), "took_s": round(time.monotonic() - began, 3), **sections}

    def _start(self, name: str, read: Callable[[], object]) -> Future:
        """The source's read in flight, or its late answer not shown yet, or a new read."""
        running = self._running.get(name)
        if running is not None and (not running.done() or running not in self._shown):
            return running
        self._shown.discard(running)
        future = self._pool.submit(run_section, read)
        self._running[name] = future
        return future
