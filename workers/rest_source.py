"""What an exchange's REST trade history must provide for :mod:`workers.backfill`.

The backfill thread, its retries, backoff, pacing and counters are generic; an exchange
only says how to ask for the trades after ``next_id`` (:meth:`RestSource.request`) and
what an answer means (:meth:`RestSource.answer`, pure: bytes in, :data:`Answer` out).
Binance pages by trade id (``fromId``), Kraken by a time cursor (``since``/``last``),
so the cursor is opaque here: the source creates it and moves it on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

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


class IdPagedTrades:
    """A REST trade history whose pages are addressed by trade id, so the next id is the
    whole cursor: Binance's ``fromId``, and histories paged with ``after=<id>`` that list
    exactly the ``limit`` ids below it (ask ``after = next_id + limit``).

    A venue's subclass says how to ask (:meth:`request`, :meth:`latest_request`) and which
    statuses mean "over the rate limit" (:attr:`throttle_statuses`); reading the answers
    is shared: the body goes to the exchange's pure ``parse_rest_trades(body, symbol,
    received_us) -> RestPage``.
    """

    min_interval_s: ClassVar[float] = 0.0  # pacing between two requests of one gap
    max_page: ClassVar[int] = 1000  # the most trades the venue lists in one answer
    # HTTP status -> seconds to wait when the answer carries no Retry-After.
    throttle_statuses: ClassVar[Mapping[int, float]] = {429: 1.0}

    def __init__(self, exchange: TradeHistory, rest_url: str, page_limit: int):
        self.exchange = exchange
        self.rest_url = rest_url.rstrip("/")
        self.page_limit = max(1, min(page_limit, self.max_page))
        self.url_setting = f"K2_{exchange.name.upper()}_REST_URL"

    def start(self, gap: Gap) -> object:
        return None  # the next id is the cursor

    def request(self, gap: Gap, next_id: int, cursor: object) -> tuple[str, dict[str, str]]:
        raise NotImplementedError

    def latest_request(self, symbol: str) -> tuple[str, dict[str, str]]:
        raise NotImplementedError

    def page_size(self, gap: Gap, next_id: int) -> int:
        """Trades to ask for from ``next_id``: a page, or what is left of the gap."""
        return min(self.page_limit, gap.last - next_id + 1)

    def answer(self, status: int, headers: dict[str, str], body: bytes, gap: Gap, next_id: int,
               cursor: object, received_us: int) -> Answer:
        page = self._page(status, headers, body, gap.symbol, received_us)
        if not isinstance(page, RestPage):
            return page
        if not page.ids:  # REST may trail the stream by a moment
            return Problem(f"no trades from id {next_id} yet")
        if max(page.ids) < next_id:  # paging on from here would never end
            return Problem(f"no trades from id {next_id} yet: ids {min(page.ids)}..{max(page.ids)} "
                           f"are below {next_id}")
        return Got(page, None)

    def latest_answer(self, status: int, headers: dict[str, str], body: bytes, symbol: str,
                      received_us: int) -> Answer:
        page = self._page(status, headers, body, symbol, received_us)
        if not isinstance(page, RestPage):
            return page
        return Got(page, None) if page.ids else Problem(f"no recent trade of {symbol}")

    def rejected(self, exc: NormalizeError) -> Answer:
        """What a body the exchange's parser refused means (some venues say "slow down" so)."""
        return Problem(f"{exc.kind}: {exc}")

    def _page(self, status: int, headers: dict[str, str], body: bytes, symbol: str,
              received_us: int) -> RestPage | Answer:
        problem = f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}"
        if status in self.throttle_statuses:
            return Throttled(retry_after_s(headers, self.throttle_statuses[status]), problem)
        if status != 200:
            return Problem(problem)
        try:
            return self.exchange.parse_rest_trades(body, symbol, received_us)
        except NormalizeError as exc:
            return self.rejected(exc)


class TradeHistory(Protocol):
    """What :class:`IdPagedTrades` needs of the exchange: its name and a pure page parser."""

    name: ClassVar[str]

    def parse_rest_trades(self, body: bytes, symbol: str, received_us: int) -> RestPage:
        """A 200 answer's body -> page; ``NormalizeError`` when it is not a trade list."""
