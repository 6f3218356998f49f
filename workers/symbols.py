"""Symbol metadata: which base asset and quote currency each exchange symbol has.

The table ships as ``workers/symbols.json`` (so workers start offline) and can be
refreshed from the exchange's REST metadata at start. Base/quote always come from
this metadata, never from guessing a suffix (``BTCUSDT`` could be BTC/USDT or
BTCU/SDT for a suffix guesser). The response parsers are pure and unit-tested; the
HTTP fetch is a thin edge.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

SYMBOLS_FILE = Path(__file__).with_name("symbols.json")


@dataclass(frozen=True)
class Pair:
    symbol: str  # normalized symbol as written to the v3 record
    base: str
    quote: str


class SymbolTable:
    """Per-exchange map from normalized symbol to :class:`Pair`, plus Kraken aliases."""

    def __init__(self, pairs: Mapping[str, Mapping[str, Pair]], kraken_aliases: Mapping[str, str]):
        self._pairs = {ex: dict(p) for ex, p in pairs.items()}
        self.kraken_aliases = dict(kraken_aliases)

    @classmethod
    def shipped(cls, path: Path = SYMBOLS_FILE) -> SymbolTable:
        doc = json.loads(path.read_text())
        pairs = {
            ex: {sym: Pair(sym, bq[0], bq[1]) for sym, bq in doc[ex].items()}
            for ex in ("binance", "kraken")
        }
        return cls(pairs, doc["kraken_asset_aliases"])

    def lookup(self, exchange: str, symbol: str) -> Pair | None:
        return self._pairs.get(exchange, {}).get(symbol)

    def known(self, exchange: str) -> list[str]:
        return sorted(self._pairs.get(exchange, {}))

    def updated(self, exchange: str, pairs: Iterable[Pair]) -> SymbolTable:
        """A copy with ``pairs`` added to (or replacing entries of) ``exchange``."""
        merged = {ex: dict(p) for ex, p in self._pairs.items()}
        merged.setdefault(exchange, {}).update({p.symbol: p for p in pairs})
        return SymbolTable(merged, self.kraken_aliases)

    def normalize_kraken(self, symbol: str) -> str:
        """``XBT/USD`` -> ``BTC/USD``, ``XDG/EUR`` -> ``DOGE/EUR``; others unchanged."""
        base, sep, quote = symbol.partition("/")
        if not sep:
            return symbol
        alias = self.kraken_aliases
        return f"{alias.get(base, base)}/{alias.get(quote, quote)}"


# REST metadata -------------------------------------------------------------------


def pairs_from_binance_exchange_info(doc: Mapping) -> list[Pair]:
    """Pairs from a Binance ``/api/v3/exchangeInfo`` response."""
    return [Pair(s["symbol"], s["baseAsset"], s["quoteAsset"]) for s in doc.get("symbols", [])]


def pairs_from_kraken_asset_pairs(doc: Mapping, aliases: Mapping[str, str]) -> list[Pair]:
    """Pairs from a Kraken ``/0/public/AssetPairs`` response, keyed by normalized wsname."""
    if doc.get("error"):
        raise ValueError(f"Kraken AssetPairs error: {doc['error']}")
    pairs = []
    for info in doc.get("result", {}).values():
        wsname = info.get("wsname")
        if not wsname or "/" not in wsname:
            continue
        base, quote = wsname.split("/", 1)
        base, quote = aliases.get(base, base), aliases.get(quote, quote)
        pairs.append(Pair(f"{base}/{quote}", base, quote))
    return pairs


def _get_json(url: str, timeout_s: float) -> dict:
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - configured URL
        return json.load(resp)


def fetch_pairs(
    exchange: str, rest_url: str, symbols: Iterable[str], aliases: Mapping[str, str], timeout_s: float
) -> list[Pair]:
    """Fetch current metadata for ``symbols``; raises ``OSError``/``ValueError`` when unreachable."""
    base = rest_url.rstrip("/")
    if exchange == "binance":
        query = urllib.parse.urlencode({"symbols": json.dumps(sorted(symbols), separators=(",", ":"))})
        return pairs_from_binance_exchange_info(_get_json(f"{base}/api/v3/exchangeInfo?{query}", timeout_s))
    if exchange == "kraken":
        return pairs_from_kraken_asset_pairs(_get_json(f"{base}/0/public/AssetPairs", timeout_s), aliases)
    raise ValueError(f"no REST metadata source for exchange {exchange!r}")
