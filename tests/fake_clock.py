"""``--fake-now``: the instant calendar-dependent tests pretend it is (see tests/conftest.py)."""

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
