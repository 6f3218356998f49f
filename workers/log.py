"""Structured logs: one JSON object per line on stderr, with the stream's context.

Logs are the operator's live view, so every event is a single line that greps and
parses (``jq``) well: ``ts``, ``level``, ``event`` and the bound context (exchange,
endpoint, ...), then the event's own fields. Noisy events go through
:meth:`EventLog.throttled`, which logs the first occurrence of each kind and then at
most one line per interval carrying how many were suppressed.
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Any


class EventLog:
    def __init__(self, out: IO[str] | None = None, /, **context: Any):
        self._out = out if out is not None else sys.stderr
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
            self._out.write(json.dumps(record, default=str, separators=(",", ":")) + "\n")
            self._out.flush()
        except (OSError, ValueError):  # closed stderr (parent gone): logging must never crash the worker
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


def _utc_now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
