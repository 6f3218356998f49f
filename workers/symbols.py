"""Symbol metadata: which base asset and quote currency each exchange symbol has.

Each venue ships its table beside its module (``workers/exchanges/<name>_symbols.json``,
``{"SYMBOL": ["BASE", "QUOTE"], ...}`` keyed by the normalized symbol), so workers start
offline, and can refresh it from the venue's REST metadata at start (the venue's
``metadata_url`` and ``pairs_from_metadata``). Base/quote always come from this metadata,
never from guessing a suffix (``BTCUSDT`` could be BTC/USDT or BTCU/SDT for a suffix
guesser). The response parsers are pure and unit-tested; the HTTP fetch is a thin edge.
"""

from __future__ import annotations

import importlib.util
import json
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from k2.errors import K2Error
from k2.exchanges import VENUES, Venue
from workers.normalize import clip

if TYPE_CHECKING:
    from workers.base import Exchange


@dataclass(frozen=True)
class Pair:
    symbol: str  # normalized symbol as written to the v3 record
    base: str
    quote: str


def symbols_file(venue: Venue) -> Path:
    """``<name>_symbols.json`` beside the venue's worker module (found without importing it)."""
    spec = importlib.util.find_spec(venue.module)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"worker module {venue.module} of exchange {venue.name!r} not found")
    return Path(spec.origin).with_name(f"{venue.name}_symbols.json")


def read_pairs(path: Path) -> dict[str, Pair]:
    """A shipped table: ``{"SYMBOL": ["BASE", "QUOTE"]}`` (keys starting with ``_`` are notes)."""
    doc = json.loads(path.read_text())
    return {sym: Pair(sym, bq[0], bq[1]) for sym, bq in doc.items() if not sym.startswith("_")}


class SymbolTable:
    """Per-exchange map from normalized symbol to :class:`Pair`."""

    def __init__(self, pairs: Mapping[str, Mapping[str, Pair]]):
        self._pairs = {ex: dict(p) for ex, p in pairs.items()}

    @classmethod
    def shipped(cls, venues: Iterable[Venue] = VENUES) -> SymbolTable:
        """Every registered venue's shipped table."""
        return cls({v.name: read_pairs(symbols_file(v)) for v in venues})

    def lookup(self, exchange: str, symbol: str) -> Pair | None:
        return self._pairs.get(exchange, {}).get(symbol)

    def known(self, exchange: str) -> list[str]:
        return sorted(self._pairs.get(exchange, {}))

    def updated(self, exchange: str, pairs: Iterable[Pair]) -> SymbolTable:
        """A copy with ``pairs`` added to (or replacing entries of) ``exchange``."""
        merged = {ex: dict(p) for ex, p in self._pairs.items()}
        merged.setdefault(exchange, {}).update({p.symbol: p for p in pairs})
        return SymbolTable(merged)


# REST metadata -------------------------------------------------------------------


def _get_json(url: str, timeout_s: float) -> dict:
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - configured URL
        return json.load(resp)


class ListingUnavailableError(K2Error):
    """The venue's symbol listing could not be read (names the URL and why)."""


def listed_pairs(doc: object, key: str, what: str, fields: Sequence[str],
                 trading: Callable[[Mapping], bool]) -> list[Pair]:
    """The ``(symbol, base, quote)`` named ``fields`` of each item of ``doc[key]`` for which
    ``trading(item)`` holds (pure). Items missing a field are left out; raises
    ``ValueError`` when ``doc`` holds no such list (an error answer, a wrong URL)."""
    items = doc.get(key) if isinstance(doc, Mapping) else None
    if not isinstance(items, list):
        raise ValueError(f"{what} answer has no {key!r} list: {clip(doc, 200)}")
    pairs = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        values = [item.get(f) for f in fields]
        if all(isinstance(v, str) and v for v in values) and trading(item):
            pairs.append(Pair(*values))
    return pairs


def fetch_listing(exchange: type[Exchange], rest_url: str, timeout_s: float,
                  get_json: Callable[[str, float], object] | None = None) -> list[Pair]:
    """Every pair the venue currently trades (``K2_<NAME>_SYMBOLS=all``); raises
    :class:`ListingUnavailableError` naming the URL when it cannot be read or parsed."""
    url = exchange.listing_url(rest_url.rstrip("/"))
    if url is None:
        raise ListingUnavailableError(f"{exchange.name} has no REST symbol listing")
    try:
        pairs = exchange.trading_pairs((get_json or _get_json)(url, timeout_s))
    except (OSError, ValueError) as exc:  # unreachable, HTTP error, not JSON, not a listing
        raise ListingUnavailableError(f"{url}: {type(exc).__name__}: {clip(str(exc), 300)}") from None
    if not pairs:
        raise ListingUnavailableError(f"{url}: the listing holds no trading symbol")
    return pairs


def fetch_pairs(exchange: type[Exchange], rest_url: str, symbols: Iterable[str], timeout_s: float) -> list[Pair]:
    """Fetch current metadata for ``symbols``; raises ``OSError``/``ValueError`` when unreachable."""
    url = exchange.metadata_url(rest_url.rstrip("/"), symbols)
    if url is None:
        raise ValueError(f"no REST metadata source for exchange {exchange.name!r}")
    return exchange.pairs_from_metadata(_get_json(url, timeout_s))
