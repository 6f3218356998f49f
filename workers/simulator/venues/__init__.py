"""Each venue's simulator protocol, found through the registration.

A venue's worker class names its protocol module (``Exchange.simulator_protocol``,
``workers/simulator/venues/<name>.py``); the module defines one :class:`VenueProtocol`
subclass: where the venue listens (WebSocket paths, REST path prefix), how its tape
writes prices, its :class:`~workers.simulator.session.Session` subclass (subscribe
handling, frames, heartbeats, per-connection limits), its REST trade history, if it has
one, and its REST instruments metadata (every listed symbol with its trading status,
in the venue's format, from :attr:`VenueProtocol.listings`). The server
(:mod:`workers.simulator.server`) routes connections and requests by these and knows no
venue itself.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import ClassVar

from k2.exchanges import VENUES
from workers.simulator.market import Tape
from workers.simulator.rest import RestReply
from workers.simulator.session import Session
from workers.simulator.universe import Listing


@dataclass(frozen=True)
class ConnectLimit:
    """New WebSocket connections per IP a venue accepts: a token bucket of ``burst``
    refilled at ``per_s`` (a venue's "300 per 5 minutes" is ``per_s=1, burst=300``);
    past it the handshake is answered HTTP 429."""

    per_s: float
    burst: int
    stated: str  # the venue's own words, for the refusal and the docs


class VenueProtocol:
    """One venue as the simulator serves it, over the venue's :class:`Tape`."""

    name: ClassVar[str]  # the registry's name
    session: ClassVar[type[Session]]
    ws_paths: ClassVar[tuple[str, ...]]  # WebSocket paths served; the first is the one clients get
    rest_prefix: ClassVar[str | None] = None  # HTTP GETs under it are this venue's REST (None: no REST)
    metadata_path: ClassVar[str | None] = None  # the REST path of its instruments metadata (the worker's metadata_url)
    separator: ClassVar[str] = ""  # between base and quote in a symbol (BTCUSDT, BTC/USD, BTC-USD)
    price_decimals: ClassVar[int]  # price tick of the tape
    pad_to: ClassVar[int] = 0  # decimals every price is written with (0: as few as needed)
    connect_limit: ClassVar[ConnectLimit | None] = None  # new connections per IP (None: none documented)
    # Client messages a second per IP, over all connections (None: the venue states its
    # limits per connection, which its session enforces).
    client_messages_per_s: ClassVar[int | None] = None
    # Quotes a generated (full-market) symbol uses, the most common first.
    quotes: ClassVar[tuple[str, ...]] = ("USDT", "USD", "BTC")
    # Symbols of the full-market benchmark's universe: about the venue's spot listing.
    full_market_symbols: ClassVar[int] = 500

    def __init__(self, tape: Tape, listings: Mapping[str, Listing] | None = None):
        self.tape = tape
        # symbol -> listing: what the metadata lists (trading or not); the tape trades the trading ones.
        self.listings: dict[str, Listing] = dict(listings) if listings is not None else {}

    @classmethod
    def spell(cls, base: str, quote: str) -> str:
        return f"{base}{cls.separator}{quote}"

    def answer(self, path: str, query: Mapping[str, list[str]], headers: Mapping[str, str]) -> RestReply:
        """One REST GET under :attr:`rest_prefix`: the metadata or the trade history."""
        if self.metadata_path is not None and path == self.metadata_path:
            return self.metadata(query)
        return self.rest(path, query, headers)

    def metadata(self, query: Mapping[str, list[str]]) -> RestReply:
        """The venue's instruments metadata over :attr:`listings` (pure)."""
        raise NotImplementedError(f"the {self.name} simulator serves no metadata")

    def listed(self, listing: Listing) -> None:
        """``listing`` was added or changed (a venue that indexes its symbols re-indexes)."""
        self.listings[listing.symbol] = listing

    def delisted(self, symbol: str) -> None:
        self.listings.pop(symbol, None)

    @classmethod
    def ws_url(cls, host: str, port: int) -> str:
        return f"ws://{host}:{port}{cls.ws_paths[0]}"

    @classmethod
    def rest_url(cls, host: str, port: int) -> str | None:
        return f"http://{host}:{port}" if cls.rest_prefix else None

    def rest(self, path: str, query: Mapping[str, list[str]], headers: Mapping[str, str]) -> RestReply:
        """Answer one REST GET under :attr:`rest_prefix` from the tape (pure)."""
        raise NotImplementedError(f"the {self.name} simulator serves no REST")

    def rate_limited(self, retry_after_s: int) -> RestReply:
        """The venue's answer to a client over its REST rate limit."""
        raise NotImplementedError(f"the {self.name} simulator serves no REST")


@cache
def protocol_class(name: str) -> type[VenueProtocol]:
    """The simulator protocol of the venue registered as ``name``."""
    from workers.exchanges import RegistrationError, exchange_class

    module = importlib.import_module(exchange_class(name).simulator_protocol)
    found = [cls for _, cls in inspect.getmembers(module, inspect.isclass)
             if issubclass(cls, VenueProtocol) and cls.__module__ == module.__name__]
    if len(found) != 1 or found[0].name != name:
        raise RegistrationError(f"{module.__name__} must define exactly one VenueProtocol subclass named {name!r}, "
                        f"found {[(c.__name__, getattr(c, 'name', None)) for c in found]}")
    return found[0]


def protocol_classes() -> dict[str, type[VenueProtocol]]:
    """Every registered venue's simulator protocol, in registry order."""
    return {v.name: protocol_class(v.name) for v in VENUES}
