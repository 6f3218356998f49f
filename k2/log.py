"""Structured logs: one JSON object per line, the same for workers and Spark jobs.

Logs are the operator's live view, so every event is a single line that greps and
parses (``jq``) well: ``ts``, ``level``, ``event`` and the bound context (a worker's
exchange and stream, a Spark job's ``job``), then the event's own fields::

    {"ts":"2025-01-01T12:00:00.123Z","level":"info","event":"connected","exchange":"binance",...}
    {"ts":"2025-01-01T12:00:03.456Z","level":"info","event":"batch","job":"silver_transformation",...}

A person watching a worker in a terminal gets the same events as aligned text instead
(``K2_LOG_FORMAT``: ``auto``, the default, writes text to a terminal and JSON anywhere
else, so files, pipes and Airflow keep parsing)::

    2025-01-01T12:00:00.123Z INFO  connected              exchange=binance symbols=["BTCUSDT"]

Workers write to stderr (:class:`EventLog`'s default); Spark jobs to stdout
(:func:`job_log`), next to the driver's own log4j lines on stderr. Noisy events go
through :meth:`EventLog.throttled`, which logs the first occurrence of each kind and
then at most one line per interval carrying how many were suppressed.

Core module: it imports only core settings, so every runtime can use it.
"""

from __future__ import annotations

import json
import os
import re
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

    def isatty(self) -> bool:
        return getattr(sys, self.name).isatty()

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
            self._out.write((text_line(record) if wants_text(self._out) else json_line(record)) + "\n")
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


def wants_text(out: IO[str]) -> bool:
    """Whether lines to ``out`` are written as text: ``K2_LOG_FORMAT`` (see k2/log_settings.py)."""
    from k2.log_settings import log_settings

    chosen = log_settings().format
    if chosen != "auto":
        return chosen == "text"
    try:
        return bool(out.isatty())
    except (AttributeError, OSError, ValueError):  # no isatty, or closed: not a terminal
        return False


EVENT_WIDTH = 22  # the event names of the workers and jobs fit: the fields start in one column
_BARE = re.compile(r"[^\s\"'=\\]+")  # a text value written as is; anything else is JSON-quoted
_COLOURS = {"warning": "\033[33m", "error": "\033[31m"}


def text_line(record: dict[str, Any], colour: bool | None = None) -> str:
    """``record`` as one aligned line: time, level, event, then ``key=value`` for every other
    field in order. Strings without spaces, quotes or ``=`` are bare; any other value is
    JSON, so a value never spills onto a second line and the line still splits on spaces.
    Levels are coloured on a terminal unless ``NO_COLOR`` is set."""
    fields = {k: v for k, v in record.items() if k not in ("ts", "level", "event")}
    level = str(record.get("level", ""))
    shown = f"{level.upper():<7}"  # WARNING is the longest
    if (colour if colour is not None else not os.environ.get("NO_COLOR")) and level in _COLOURS:
        shown = f"{_COLOURS[level]}{shown}\033[0m"
    pairs = " ".join(f"{k}={_value_text(v)}" for k, v in fields.items())
    return f"{record.get('ts', '')} {shown} {_value_text(record.get('event', '')):<{EVENT_WIDTH}} {pairs}".rstrip()


def _value_text(value: Any) -> str:
    if isinstance(value, str) and _BARE.fullmatch(value):
        return value
    try:
        return json.dumps(value, default=_text, separators=(",", ":"))
    except (TypeError, ValueError):  # a dict with tuple keys, a cycle: its text, quoted
        return json.dumps(_text(value))


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
