"""The simulated market: a deterministic (seeded) tape of trades per exchange.

Every connection of an exchange sees the same tape, like on a real venue, so a
rotation overlap yields true duplicates (same trade ids) and a gap would be visible.
Prices and quantities are generated as decimal text, the form exchanges send. A
bounded archive per symbol backs the REST trade histories (gap backfill).
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections import deque
from dataclasses import dataclass
from decimal import Decimal

SNAPSHOT_DEPTH = 50  # Kraken replays the last 50 trades on subscribe
ARCHIVE_DEPTH = 10_000  # trades per symbol kept for the REST histories (bounded memory)

_REFERENCE_PRICES = {"BTC": "94250", "ETH": "3300", "BNB": "690", "SOL": "190", "XRP": "2.2", "DOGE": "0.32"}


@dataclass(frozen=True, slots=True)
class SimTrade:
    symbol: str
    trade_id: int
    price: str  # decimal text
    qty: str  # decimal text
    taker: str  # "buy" | "sell"
    ts_us: int


class Tape:
    """Trades of one exchange: sequential ids per symbol, random-walk prices."""

    def __init__(
        self,
        symbols: list[str],
        bases: dict[str, str],
        seed: int,
        price_decimals: int,
        pad_to: int = 0,
        archive_depth: int = ARCHIVE_DEPTH,
    ):
        self.rng = random.Random(seed)
        self.pad_to = pad_to  # Binance writes fixed 8 decimals ("94250.01000000")
        self.symbols = symbols
        self.price_decimals = price_decimals
        self.next_id = {s: self.rng.randrange(1_000_000, 9_000_000) for s in symbols}
        self.price = {s: Decimal(_REFERENCE_PRICES.get(bases[s], "100")) for s in symbols}
        self.history = {s: deque(maxlen=SNAPSHOT_DEPTH) for s in symbols}
        # Consecutive ids per symbol, so a REST lookup by id is an index, not a search.
        self.archive: dict[str, deque[SimTrade]] = {s: deque(maxlen=archive_depth) for s in symbols}
        self._tick = Decimal(1).scaleb(-price_decimals)
        self._last_ts = 0

    def next(self, now_us: int) -> SimTrade:
        rng = self.rng
        symbol = self.symbols[rng.randrange(len(self.symbols))]
        price = self.price[symbol] + self._tick * rng.randint(-20, 20)
        if price <= 0:
            price = self._tick * 1000
        self.price[symbol] = price
        qty = Decimal(rng.randint(1, 500_000_000)).scaleb(-8)
        trade_id = self.next_id[symbol]
        self.next_id[symbol] = trade_id + 1
        ts = max(now_us, self._last_ts)  # monotonic time, like a matching engine's clock
        self._last_ts = ts
        price_text = f"{price:.{self.pad_to}f}" if self.pad_to else f"{price:f}"
        trade = SimTrade(symbol, trade_id, price_text, f"{qty:f}", rng.choice(("buy", "sell")), ts)
        self.history[symbol].append(trade)
        self.archive[symbol].append(trade)
        return trade

    def since(self, symbol: str, from_id: int, limit: int) -> list[SimTrade]:
        """Up to ``limit`` archived trades of ``symbol`` with id >= ``from_id`` (ascending);
        starts at the oldest archived trade when ``from_id`` is older than the archive."""
        archive = self.archive[symbol]
        if not archive:
            return []
        start = max(0, from_id - archive[0].trade_id)
        return list(itertools.islice(archive, start, start + limit))

    def after_ns(self, symbol: str, since_ns: int, limit: int) -> list[SimTrade]:
        """Up to ``limit`` archived trades of ``symbol`` with time (as ns) > ``since_ns``, ascending
        (Kraken's ``since``); from the oldest archived trade when ``since_ns`` is older."""
        archive = self.archive[symbol]
        # A trade's time as ns is ts_us * 1000, so "> since_ns" is "ts_us > since_ns // 1000".
        start = bisect.bisect_right(archive, since_ns // 1000, key=lambda t: t.ts_us)
        return list(itertools.islice(archive, start, start + limit))

    def latest(self, symbol: str, limit: int) -> list[SimTrade]:
        archive = self.archive[symbol]
        return list(itertools.islice(archive, max(0, len(archive) - limit), None))
