"""Times and durations as operators and DAG params write them: ISO 8601 (naive means UTC),
``now``, and ``30s``/``15m``/``2h``/``7d``. Shared by the query CLI and the DAGs."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from k2.errors import K2Error

_RELATIVE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class QueryError(K2Error, ValueError):
    """A query argument cannot be used; the message says which and why."""


class ReadOnlyError(QueryError):
    """The query would write, or is not one single read-only statement."""


def parse_duration(text: str) -> timedelta:
    match = _RELATIVE.match(text.strip())
    if not match:
        raise QueryError(f"{text!r} is not a duration like 30s, 15m, 2h or 7d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_time(text: str) -> datetime:
    """ISO 8601 (naive means UTC) or ``now``."""
    if text.strip().lower() == "now":
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise QueryError(f"{text!r} is not an ISO 8601 time such as 2026-01-01T12:00") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
