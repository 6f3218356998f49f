"""The suite's fake clocks.

* ``--fake-now``: the instant calendar-dependent tests pretend it is (see tests/conftest.py).
* :class:`FakeClock`: a monotonic clock that moves only when a test says so, for code that
  takes ``clock=`` (the workers' connection manager and supervisor): watchdogs, backoffs,
  pings and lifetimes are then driven to the exact instant, with no wall-clock wait.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def fake_now(text: str, real: datetime) -> datetime:
    """``HH:MM`` -> its latest occurrence no later than ``real``; else an ISO-8601 instant (UTC if naive).

    Always in the past, so data seeded at the fake time is never "in the future" for the
    streams, which keep the real clock.
    """
    if len(text) <= 5 and ":" in text:
        hour, minute = (int(part) for part in text.split(":"))
        moment = real.astimezone(UTC).replace(hour=hour, minute=minute, second=0, microsecond=0)
        return moment if moment <= real else moment - timedelta(days=1)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class FakeClock:
    """Seconds, like ``time.monotonic``; call it to read, :meth:`advance` to move it."""

    def __init__(self, start: float = 1000.0):
        self.now = start  # not 0: code must not treat 0 as "never"

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError(f"a monotonic clock cannot go back ({seconds} s)")
        self.now += seconds
        return self.now

    def set(self, instant: float) -> float:
        """Move to ``instant`` (not earlier than now)."""
        return self.advance(instant - self.now)
