"""What an exchange's REST trade history must provide for :mod:`workers.backfill`.

The backfill thread, its retries, backoff, pacing and counters are generic; an exchange
only says how to ask for the trades after ``next_id`` (:meth:`RestSource.request`) and
what an answer means (:meth:`RestSource.answer`, pure: bytes in, :data:`Answer` out).
Binance pages by trade id (``fromId``), Kraken by a time cursor (``since``/``last``),
so the cursor is opaque here: the source creates it and moves it on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from workers.normalize import NormalizeError
from workers.progress import Gap


@dataclass
class RestPage:
    """One REST answer: records, rejected items, and every id it listed."""

    records: list[dict] = field(default_factory=list)
    rejects: list[tuple[NormalizeError, bytes]] = field(default_factory=list)  # (error, item JSON)
    ids: list[int] = field(default_factory=list)  # rejected items included


@dataclass
class Got:
    """Trades; ``cursor`` is where the next request starts."""

    page: RestPage
    cursor: object


@dataclass
class Again:
    """Ask again from ``cursor`` (e.g. further back in time): progress, not a failure.
    ``page``: what the answer did list; its trades inside the gap are kept in case the
    history is being cut from below and never lists them again."""

    cursor: object
    reason: str
    page: RestPage | None = None


@dataclass
class Throttled:
    """Over the venue's rate limit: wait ``wait_s``, then ask again."""

    wait_s: float
    problem: str


@dataclass
class Problem:
    """A failed request (bad status, unparsable body, nothing yet): retried with backoff."""

    problem: str


Answer = Got | Again | Throttled | Problem


class RestSource(Protocol):
    min_interval_s: float  # pacing: at least this long between two requests of one gap
    url_setting: str  # the setting to check when requests keep failing, e.g. K2_BINANCE_REST_URL

    def start(self, gap: Gap) -> object:
        """The cursor of the first request for ``gap``."""

    def request(self, gap: Gap, next_id: int, cursor: object) -> tuple[str, dict[str, str]]:
        """(url, headers) asking for trades from ``next_id`` on."""

    def answer(self, status: int, headers: dict[str, str], body: bytes, gap: Gap, next_id: int,
               cursor: object, received_us: int) -> Answer:
        """What one HTTP answer means (pure)."""

    def latest_request(self, symbol: str) -> tuple[str, dict[str, str]]:
        """(url, headers) asking for the most recent trade of ``symbol`` (the connect probe)."""

    def latest_answer(self, status: int, headers: dict[str, str], body: bytes, symbol: str,
                      received_us: int) -> Answer:
        """What the probe's answer means: ``Got`` (its highest id is the latest), or not (pure)."""


def retry_after_s(headers: dict[str, str], default: float) -> float:
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                break
    return default
