"""A venue's listed symbols as the simulator serves them: shipped ones, or a generated universe.

A full market is thousands of symbols per venue (``--universe binance=2000,kraken=1000``).
A universe starts with the venue's shipped symbols (``workers/exchanges/<v>_symbols.json``,
its defaults first) and goes on with made-up ones, seeded: bases of four to six letters
over the venue's usual quote currencies, each spelled the venue's way (``ABCDUSDT``,
``ABCD/USD``, ``ABCD-USD``). What the venue's REST metadata answers (symbol, base, quote,
trading status) comes from the :class:`Listing`\\ s, so a worker learns every symbol
(``K2_<EXCHANGE>_SYMBOLS=all``) the way it does from the live venue.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from k2.errors import K2Error
from workers.simulator.market import reference_price

# Asset names a generated base must not take: Kraken's v1 aliases (a worker maps XBT to
# BTC). The venue's own quotes are reserved too (a base equal to a quote reads as a
# second quote).
RESERVED = frozenset({"XBT", "XDG"})
# What a symbol may contain: every venue's spelling, and nothing the record's JSON
# lines would have to escape (they are written without json.dumps, see session.Recorder).
SYMBOL_TEXT = re.compile(r"[A-Z0-9][A-Z0-9/\-_.]{0,29}")


class UniverseError(K2Error, ValueError):
    """A universe or listing the simulator cannot serve."""


@dataclass(frozen=True, slots=True)
class Listing:
    symbol: str  # as the venue spells it on the wire and in its metadata
    base: str
    quote: str
    price: str | None = None  # reference price text (None: the asset's known one)
    trading: bool = True  # False: listed in the metadata with the venue's not-trading status, no trades


def spell(separator: str, base: str, quote: str) -> str:
    return f"{base}{separator}{quote}"


def check_symbol(symbol: str) -> str:
    if not SYMBOL_TEXT.fullmatch(symbol):
        raise UniverseError(f"symbol {symbol!r} is not upper-case letters, digits and / - _ . (at most 30)")
    return symbol


def generate(venue: str, separator: str, quotes: Sequence[str], count: int, seed: int,
             shipped: Sequence[Listing]) -> list[Listing]:
    """``count`` listings of ``venue``: ``shipped`` first (in order), then made-up symbols
    quoted in ``quotes`` (the most common first), the same for the same seed."""
    if count < 0:
        raise UniverseError(f"{venue}: a universe of {count} symbols")
    listings = list(shipped[:count])
    taken = {listing.symbol for listing in listings}
    bases_taken = {listing.base for listing in shipped} | RESERVED | set(quotes)
    rng = random.Random(f"universe:{venue}:{seed}")
    weights = [1 / (rank + 1) for rank in range(len(quotes))]  # most pairs quote in the first
    while len(listings) < count:
        base = "".join(rng.choices(string.ascii_uppercase, k=rng.randint(4, 6)))
        if base in bases_taken:
            continue
        bases_taken.add(base)
        # A base is listed against one to three quotes, like real assets.
        for quote in dict.fromkeys(rng.choices(quotes, weights, k=rng.randint(1, 3))):
            symbol = spell(separator, base, quote)
            if symbol in taken or len(listings) >= count:
                continue
            taken.add(symbol)
            listings.append(Listing(symbol, base, quote, reference_price("", rng)))
    return listings


def parse_sizes(text: str, venues: Iterable[str]) -> dict[str, int]:
    """``binance=2000,kraken=1000`` -> {venue: count}; names must be registered venues."""
    known = list(venues)
    sizes: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, value = part.partition("=")
        if not sep or name.strip() not in known:
            raise UniverseError(f"universe entry {part!r}: write VENUE=COUNT with VENUE one of {', '.join(known)}")
        try:
            sizes[name.strip()] = int(value)
        except ValueError:
            raise UniverseError(f"universe entry {part!r}: COUNT must be an integer") from None
        if sizes[name.strip()] < 0:
            raise UniverseError(f"universe entry {part!r}: COUNT must not be negative")
    return sizes


def split_rate(total: float, sizes: dict[str, int]) -> dict[str, float]:
    """An aggregate trades/s shared among venues in proportion to their symbols."""
    symbols = sum(sizes.values())
    return {venue: total * n / symbols for venue, n in sizes.items()} if symbols else {}
