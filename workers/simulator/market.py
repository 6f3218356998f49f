"""The simulated market: a deterministic (seeded) tape of trades per exchange.

Every connection of an exchange sees the same tape, like on a real venue, so a
rotation overlap yields true duplicates (same trade ids) and a gap would be visible.
Prices and quantities are generated as decimal text, the form exchanges send. A
bounded archive per symbol backs the REST trade histories (gap backfill).

Prices and quantities are kept as integers of their smallest unit and written as text
by integer arithmetic: the tape is the simulator's hot path when a full market trades
tens of thousands of times a second, and Decimal arithmetic cost more than everything
else per trade together.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections import deque
from decimal import Decimal
from typing import NamedTuple

SNAPSHOT_DEPTH = 50  # Kraken replays the last 50 trades on subscribe
ARCHIVE_DEPTH = 10_000  # trades per symbol kept for the REST histories (bounded memory)
QTY_DECIMALS = 8
MAX_PRICE_DECIMALS = 8  # decimal(18,8): the contract's scale
PRICE_DIGITS = 5  # significant digits of a price made up for a symbol without a reference

_REFERENCE_PRICES = {"BTC": "94250", "ETH": "3300", "BNB": "690", "SOL": "190", "XRP": "2.2", "DOGE": "0.32"}


class SimTrade(NamedTuple):  # a tuple: built tens of thousands of times a second
    symbol: str
    trade_id: int
    price: str  # decimal text
    qty: str  # decimal text
    taker: str  # "buy" | "sell"
    ts_us: int


def decimal_text(units: int, scale: int) -> str:
    """``units`` of 10**-scale as plain decimal text with exactly ``scale`` decimals."""
    text = str(units)  # string slicing: twice as fast as divmod and a format spec
    if scale <= 0:
        return text
    if len(text) <= scale:
        text = "0" * (scale + 1 - len(text)) + text
    return f"{text[:-scale]}.{text[-scale:]}"


def reference_price(base: str, rng: random.Random) -> str:
    """A known asset's reference price, or one made up from ``rng`` (about 0.01 to 30,000,
    five significant digits) for the generated symbols of a full-market universe."""
    known = _REFERENCE_PRICES.get(base)
    if known is not None:
        return known
    value = 10 ** rng.uniform(-2, 4.5)
    return f"{value:.{max(0, PRICE_DIGITS - 1 - math.floor(math.log10(value)))}f}"


class Tape:
    """Trades of one exchange: sequential ids per symbol, random-walk prices.

    Symbols can be listed and delisted while it runs (:meth:`list`, :meth:`delist`): a
    delisted symbol stops trading; its archive stays readable, like a venue's history.
    """

    def __init__(
        self,
        symbols: list[str],
        bases: dict[str, str],
        seed: int,
        price_decimals: int,
        pad_to: int = 0,
        archive_depth: int = ARCHIVE_DEPTH,
        prices: dict[str, str] | None = None,
    ):
        self.rng = random.Random(seed)
        self.pad_to = pad_to  # Binance writes fixed 8 decimals ("94250.01000000")
        self.price_decimals = price_decimals
        self.archive_depth = archive_depth
        self.symbols: list[str] = []  # trading now, in listing order (the random pick's list)
        self.listed: set[str] = set()
        self.next_id: dict[str, int] = {}
        self.units: dict[str, int] = {}  # current price, in units of 10**-scale
        self.scale: dict[str, int] = {}
        self.step: dict[str, int] = {}  # one price tick, in units
        self.history: dict[str, deque[SimTrade]] = {}
        # Consecutive ids per symbol, so a REST lookup by id is an index, not a search.
        self.archive: dict[str, deque[SimTrade]] = {}
        self._last_ts = 0
        for symbol in symbols:
            self.list(symbol, bases[symbol], (prices or {}).get(symbol))

    def list(self, symbol: str, base: str, price: str | None = None) -> None:
        """Start trading ``symbol`` (priced from ``price`` or ``base``'s reference)."""
        if symbol in self.listed:
            return
        rng = self.rng
        if symbol not in self.next_id:  # a relisted symbol goes on from its last id and price
            self.next_id[symbol] = rng.randrange(1_000_000, 9_000_000)
            ref = Decimal(price or reference_price(base, rng))
            # The price's own decimals or the venue's tick, whichever is finer (capped).
            scale = min(MAX_PRICE_DECIMALS, max(self.price_decimals, -ref.as_tuple().exponent))
            self.scale[symbol] = scale
            self.units[symbol] = int(ref.scaleb(scale))
            self.step[symbol] = 10 ** (scale - min(scale, self._tick_decimals(ref, scale)))
            self.history[symbol] = deque(maxlen=SNAPSHOT_DEPTH)
            self.archive[symbol] = deque(maxlen=self.archive_depth)
        self.symbols.append(symbol)
        self.listed.add(symbol)

    def _tick_decimals(self, ref: Decimal, scale: int) -> int:
        """Decimals of one tick: the venue's tick for a reference price, finer for a
        cheap made-up one (a tick of 0.01 would walk a 0.0123 price through zero)."""
        if ref >= 1 or scale <= self.price_decimals:
            return self.price_decimals
        return scale

    def delist(self, symbol: str) -> bool:
        """Stop trading ``symbol``; False if it was not trading."""
        if symbol not in self.listed:
            return False
        self.listed.discard(symbol)
        self.symbols.remove(symbol)
        return True

    def next(self, now_us: int) -> SimTrade:
        # The draws of randrange(n), randint(-20, 20), randint(1, 5e8) and choice() (the same
        # numbers for the same seed, which tests rely on) without their argument checks.
        below = self.rng._randbelow
        symbols = self.symbols
        symbol = symbols[below(len(symbols))]
        step = self.step[symbol]
        units = self.units[symbol] + step * (below(41) - 20)
        if units <= 0:
            units = step * 1000
        self.units[symbol] = units
        qty = 1 + below(500_000_000)
        trade_id = self.next_id[symbol]
        self.next_id[symbol] = trade_id + 1
        ts = max(now_us, self._last_ts)  # monotonic time, like a matching engine's clock
        self._last_ts = ts
        scale = self.scale[symbol]
        price_text = decimal_text(units, scale)
        if self.pad_to > scale:
            price_text += "0" * (self.pad_to - scale)
        trade = SimTrade(symbol, trade_id, price_text, decimal_text(qty, QTY_DECIMALS),
                         ("buy", "sell")[below(2)], ts)
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
