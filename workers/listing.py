"""``K2_<EXCHANGE>_SYMBOLS=all``: the venue's symbol listing, read at start and followed.

At start the worker captures every symbol the venue's REST metadata says is trading
(:meth:`~workers.base.Exchange.trading_pairs`); a listing that cannot be read is an
error naming the setting and the URL (:class:`ListingUnavailableError`, exit code
``EXIT_UNAVAILABLE``: the supervisor restarts the worker after its backoff), never a
worker with nothing to capture. Then every ``K2_WORKERS_SYMBOLS_REFRESH_S`` the listing
is read again on a helper thread: new symbols are learnt by the symbol table and
subscribed, delisted ones unsubscribed (:class:`~workers.shards.ShardSet`), one log line
per change; a refresh that fails is a warning and the current set stays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from k2.errors import K2Error
from k2.log import EventLog
from workers.base import Exchange
from workers.shards import ShardSet
from workers.symbols import ListingUnavailableError, Pair, fetch_listing

FETCH_TIMEOUT_S = 10.0
# A refresh that would drop more than this share of the captured symbols (and more than a
# handful) is taken for a broken answer (a truncated listing, a maintenance page parsed as
# an empty market), not a mass delisting: it is a warning and the set stays.
MAX_DELISTED_SHARE = 0.5
MIN_SUSPICIOUS_DELISTED = 10
Fetch = Callable[[], list[Pair]]


class StartListingError(K2Error):
    """``=all`` and the listing unreadable at start (names the setting and the URL)."""


def start_listing(exchange: type[Exchange], rest_url: str, log: EventLog,
                  fetch: Fetch | None = None) -> list[Pair]:
    """Every pair the venue trades now, for a worker starting with ``=all``."""
    up = exchange.name.upper()
    try:
        pairs = (fetch or (lambda: fetch_listing(exchange, rest_url, FETCH_TIMEOUT_S)))()
    except ListingUnavailableError as exc:
        raise StartListingError(f"K2_{up}_SYMBOLS=all needs the venue's symbol listing, which could not be "
                                f"read: {exc}; check K2_{up}_REST_URL or list the symbols") from None
    log.info("symbols_listing", source=exchange.listing_url(rest_url.rstrip("/")), symbols=len(pairs))
    return pairs


def diff(current: Iterable[str], listed: Sequence[Pair]) -> tuple[list[Pair], list[str]]:
    """(pairs listed that are not captured, in listing order; captured symbols no longer
    listed, sorted)."""
    now = set(current)
    seen = {p.symbol for p in listed}
    return [p for p in listed if p.symbol not in now], sorted(now - seen)


class Listing:
    """Follows the listing while the worker runs; :meth:`turn` every loop turn."""

    def __init__(self, exchange: Exchange, shards: ShardSet, fetch: Fetch, interval_s: float, log: EventLog,
                 now: float, executor: ThreadPoolExecutor | None = None):
        self.exchange = exchange
        self.shards = shards
        self.fetch = fetch
        self.interval_s = interval_s
        self.log = log
        self.next_at = now + interval_s
        self.executor = executor  # None: fetch on the calling thread (tests)
        self._pending: Future | None = None

    def turn(self, now: float) -> None:
        if self._pending is not None:
            if not self._pending.done():
                return
            future, self._pending = self._pending, None
            self._settle(future)
        if now < self.next_at:
            return
        self.next_at = now + self.interval_s
        if self.executor is None:
            future: Future = Future()
            try:
                future.set_result(self.fetch())
            except Exception as exc:  # noqa: BLE001 - settled below like the thread's
                future.set_exception(exc)
            self._settle(future)
        else:
            self._pending = self.executor.submit(self.fetch)

    def stop(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)

    def _settle(self, future: Future) -> None:
        try:
            pairs = future.result()
        except ListingUnavailableError as exc:
            self.log.warning("symbols_refresh_failed", error=str(exc), symbols=len(self.exchange.pairs),
                             action=f"keeping the current symbols; next try in {self.interval_s:g}s")
            return
        except Exception as exc:  # noqa: BLE001 - a bug in a parser must not stop the capture
            self.log.error("symbols_refresh_failed", error=f"{type(exc).__name__}: {exc}"[:300],
                           symbols=len(self.exchange.pairs), action="keeping the current symbols")
            return
        self.apply(pairs)

    def apply(self, pairs: Sequence[Pair]) -> None:
        """Capture what ``pairs`` (the listing) adds, stop what it no longer holds."""
        listed, delisted = diff(self.exchange.pairs, pairs)
        if len(delisted) > max(MIN_SUSPICIOUS_DELISTED, MAX_DELISTED_SHARE * len(self.exchange.pairs)):
            self.log.warning("symbols_refresh_failed", error=f"the listing drops {len(delisted)} of the "
                             f"{len(self.exchange.pairs)} symbols captured; taken for a broken answer",
                             delisted_sample=delisted[:20], symbols=len(self.exchange.pairs),
                             action="keeping the current symbols; restart the worker to accept such a listing")
            return
        if delisted:  # first: the room they leave takes listings before a new shard does
            self.exchange.drop_symbols(delisted)
            self.shards.remove(delisted)
            self.log.info("symbols_delisted", symbols=delisted, count=len(delisted), total=len(self.exchange.pairs))
        if listed:
            self.exchange.add_pairs(listed)
            self.shards.add([p.symbol for p in listed])
            self.log.info("symbols_listed", symbols=[p.symbol for p in listed], count=len(listed),
                          total=len(self.exchange.pairs))
