"""The exchange registry: one line per venue, the list every runtime derives from.

Contracts (topics, subjects, Silver tables), the workers' settings, Spark's validation,
the completeness ledger, the stack, the simulator and the benches all read this list;
none of them names a venue. It is data only, because the core layer imports no other
package of the project: what a venue *does* lives in its worker module, named here by
its dotted path and imported only by the runtimes that need it.

Registering a venue (docs/architecture.md, "Adding an exchange"):

1. one :class:`Venue` line in :data:`VENUES` below, and the new symbol in the v3
   schema's ``Exchange`` enum (include/schemas/trade_v3.avsc, a BACKWARD-compatible
   change);
2. ``workers/exchanges/<name>.py``: one :class:`workers.base.Exchange` subclass whose
   ``name``, ``enum_symbol`` and ``sequential_ids`` agree with the line here (checked when
   it is loaded), declaring its endpoints and setting defaults, subscribe/ping/parse,
   symbol normalization and metadata refresh, and REST backfill if the venue has one;
   helpers only it uses go beside it as ``<name>_<what>.py``;
3. ``workers/exchanges/<name>_symbols.json``: the shipped symbol metadata,
   ``{"SYMBOL": ["BASE", "QUOTE"], ...}`` keyed by the normalized symbol;
4. ``workers/simulator/venues/<name>.py``: its simulator protocol (a session class and,
   if the venue has one, its REST history), named by the Exchange subclass's
   ``simulator_protocol``;
5. its recorded frames and tests.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Venue:
    name: str  # lower-case id used in topic, table, setting and module names
    enum_symbol: str  # symbol in the v3 schema's Exchange enum
    default_partitions: int  # of its Kafka trade topic
    module: str  # dotted path of its worker module (the runtimes import it, the core never)
    symbol_separator: str  # between base and quote in its symbols (Spark checks symbol vs base/quote)
    contiguous_ids: bool  # each trade of a symbol gets the next integer id: a jump is a gap


VENUES: tuple[Venue, ...] = (
    Venue("binance", "BINANCE", 6, "workers.exchanges.binance", symbol_separator="", contiguous_ids=True),
    Venue("kraken", "KRAKEN", 20, "workers.exchanges.kraken", symbol_separator="/", contiguous_ids=True),
    Venue("coinbase", "COINBASE", 6, "workers.exchanges.coinbase", symbol_separator="-", contiguous_ids=True),
    Venue("bybit", "BYBIT", 6, "workers.exchanges.bybit", symbol_separator="", contiguous_ids=False),
    Venue("okx", "OKX", 6, "workers.exchanges.okx", symbol_separator="-", contiguous_ids=True),
)


def venue(name: str) -> Venue:
    """The registered venue called ``name`` (KeyError naming the known ones otherwise)."""
    for v in VENUES:
        if v.name == name:
            return v
    raise KeyError(f"unknown exchange {name!r}; known: {', '.join(names())}")


def names() -> tuple[str, ...]:
    return tuple(v.name for v in VENUES)
