"""Structured logs: one JSON object per line, the same for workers and Spark jobs.

Logs are the operator's live view, so every event is a single line that greps and
parses (``jq``) well: ``ts``, ``level``, ``event`` and the bound context (a worker's
exchange and stream, a Spark job's ``job``), then the event's own fields::

    {"ts":"2025-01-01T12:00:00.123Z","level":"info","event":"connected","exchange":"binance",...}
    {"ts":"2025-01-01T12:00:03.456Z","level":"info","event":"batch","job":"silver_transformation",...}

Workers write to stderr (:class:`EventLog`'s default); Spark jobs to stdout
(:func:`job_log`), next to the driver's own log4j lines on stderr. Noisy events go
through :meth:`EventLog.throttled`, which logs the first occurrence of each kind and
then at most one line per interval carrying how many were suppressed.

Core module: it imports nothing of the project, so every runtime can use it.
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Any


class _Console:
    """``sys.stdout`` or ``sys.stderr`` as it is when a line is written, not when the
    logger was made (pytest's capture and ``contextlib.redirect_stdout`` swap it)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def write(self, text: str) -> int:
        return getattr(sys, self.name).write(text)

    def flush(self) -> None:
        getattr(sys, self.name).flush()


STDOUT: IO[str] = _Console("stdout")  # type: ignore[assignment]
STDERR: IO[str] = _Console("stderr")  # type: ignore[assignment]


class EventLog:
    def __init__(self, out: IO[str] | None = None, /, **context: Any):
        self._out = out if out is not None else STDERR
        self.context = context
        self._throttle: dict[str, tuple[float, int]] = {}  # kind -> (last logged, suppressed)

    def bind(self, **context: Any) -> EventLog:
        """A logger writing to the same stream with extra context fields."""
        child = EventLog(self._out, **{**self.context, **context})
        child._throttle = self._throttle
        return child

    def event(self, level: str, event: str, **fields: Any) -> None:
        record = {"ts": _utc_now(), "level": level, "event": event, **self.context, **fields}
        try:
            self._out.write(json_line(record) + "\n")
            self._out.flush()
        except (OSError, ValueError):  # closed stderr (parent gone): logging must never crash the process
            pass

    def info(self, event: str, **fields: Any) -> None:
        self.event("info", event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self.event("warning", event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self.event("error", event, **fields)

    def throttled(
        self, level: str, event: str, kind: str, interval_s: float = 60.0, **fields: Any
    ) -> None:
        """Log ``event`` for ``kind`` at most once per ``interval_s``, counting the rest."""
        now = time.monotonic()
        key = f"{event}:{kind}"
        last, suppressed = self._throttle.get(key, (float("-inf"), 0))
        if now - last < interval_s:
            self._throttle[key] = (last, suppressed + 1)
            return
        self._throttle[key] = (now, 0)
        self.event(level, event, kind=kind, suppressed_since_last=suppressed, **fields)


def job_log(job: str, out: IO[str] | None = None, **context: Any) -> EventLog:
    """The logger of a Spark job: every line carries ``job`` (its module name, e.g.
    ``silver_transformation``) and goes to stdout unless ``out`` says otherwise."""
    return EventLog(out if out is not None else STDOUT, job=job, **context)


def json_line(record: dict[str, Any]) -> str:
    """``record`` as compact JSON on one line; a value JSON cannot hold (an object, a
    dict with tuple keys, a cycle) is written as its text rather than losing the line."""
    try:
        return json.dumps(record, default=_text, separators=(",", ":"))
    except (TypeError, ValueError):
        return json.dumps({k: _plain(v) for k, v in record.items()}, default=_text, separators=(",", ":"))


def _plain(value: Any) -> Any:
    try:
        json.dumps(value, default=_text)
    except (TypeError, ValueError):
        return _text(value)
    return value


def _text(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - a broken __str__ must not lose the line
        return f"<unprintable {type(value).__name__}>"


def parse_events(text: str) -> list[dict]:
    """The JSON objects of a structured log, one per line, in order; other lines (a
    traceback, plain output of another tool in the same file) are skipped."""
    events = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                pass
    return events


def events_named(text: str, event: str) -> list[dict]:
    """The events called ``event`` in a structured log (what tests and tools look for)."""
    return [e for e in parse_events(text) if e.get("event") == event]


def _utc_now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
