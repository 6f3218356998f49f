"""The small contract every exchange module implements: endpoints, subscribe, parse.

An exchange module (``workers/exchanges/<name>.py``, registered by one line in
:mod:`k2.exchanges`) declares with class attributes everything that differs for its venue:
the defaults of its generated settings (``K2_<NAME>_URLS``, ``_SYMBOLS``, ``_REST_URL``,
``_METRICS_PORT`` and, with an application ping, ``K2_WORKERS_<NAME>_PING_INTERVAL_S``),
whether idle connections carry heartbeats, whether trade ids are contiguous and whether
it backfills over REST (``rest_source``), how symbols are normalized and refreshed from
REST metadata, and where its simulator protocol lives. It knows its wire protocol and nothing about sockets, retries or
Kafka: :mod:`workers.connection` owns the lifecycle, :mod:`workers.run` wires the
pieces. ``parse`` is pure: frame text in, :class:`Parsed` out (or a
:class:`~workers.normalize.NormalizeError` for a frame that is unusable as a whole).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from k2.errors import K2Error
from workers.normalize import NormalizeError, clip
from workers.symbols import Pair, SymbolTable


@dataclass(frozen=True, slots=True)
class Control:
    """A non-trade frame the connection layer must react to (or just count)."""

    kind: str  # ack | subscribe_error | exchange_error | heartbeat | status | pong | server_shutdown
    detail: str = ""


@dataclass(slots=True)
class Parsed:
    """What one frame carried: trades, a control event, and trades that were rejected."""

    trades: list[dict] = field(default_factory=list)
    control: Control | None = None
    rejects: list[NormalizeError] = field(default_factory=list)


class UnknownSymbolError(K2Error, ValueError):
    """A configured symbol is not in the symbol table (names the exchange and the symbol)."""


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``count`` events in any ``window_s`` seconds."""

    count: int
    window_s: float


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What a venue lets one client do, for sharding (:mod:`workers.shards`). Each venue
    declares its own with the page it read them on; a figure the venue does not document
    is K2's choice and says so."""

    per_connection: int  # what one connection may carry, in Exchange.symbol_weight units
    messages: Rate  # subscribe/unsubscribe messages we send on one connection
    connects: Rate  # new connections per IP
    max_connections: int | None = None  # open connections per IP, when documented


class Exchange(ABC):
    """One exchange's protocol. Subclasses set the class attributes and implement parse."""

    name: ClassVar[str]  # contracts.Exchange.name, e.g. "binance"
    enum_symbol: ClassVar[str]  # the v3 schema's Exchange enum symbol, e.g. "BINANCE"
    sends_heartbeats: ClassVar[bool]  # whether idle connections still deliver data frames
    # Trade ids consecutive per symbol: a jump is a gap, detected and counted (workers.progress).
    sequential_ids: ClassVar[bool] = False
    # And a REST history to fill gaps from (workers.backfill): then it has rest_source().
    backfills: ClassVar[bool] = False

    # Defaults of the settings generated for the venue (workers.settings); a *_doc replaces
    # the generic documentation of that setting.
    title: ClassVar[str] = ""  # the venue as written in prose; default: name capitalized
    default_urls: ClassVar[tuple[str, ...]]  # K2_<NAME>_URLS: WebSocket URLs (failover order)
    urls_doc: ClassVar[str] = ""
    default_symbols: ClassVar[tuple[str, ...]]  # K2_<NAME>_SYMBOLS
    symbols_doc: ClassVar[str] = ""
    default_rest_url: ClassVar[str]  # K2_<NAME>_REST_URL: metadata and backfill
    rest_url_doc: ClassVar[str] = ""
    # Application pings (ping_message) every this many seconds by default
    # (K2_WORKERS_<NAME>_PING_INTERVAL_S); None: the venue has none.
    ping_interval_s: ClassVar[float | None] = None
    # Dotted path of its simulator protocol (workers/simulator/venues/<name>.py).
    simulator_protocol: ClassVar[str]
    # Per-connection and per-IP limits the shard planner keeps within.
    limits: ClassVar[ConnectionLimits]

    def __init__(self, symbols: Sequence[str], table: SymbolTable):
        self.table = table
        self.pairs: dict[str, Pair] = {}
        for raw in symbols:
            symbol = self.normalize_symbol(raw)
            pair = table.lookup(self.name, symbol)
            if pair is None:
                raise UnknownSymbolError(
                    f"{self.name} symbol {raw!r} is not in the symbol table; known: "
                    + ", ".join(table.known(self.name))
                )
            self.pairs[symbol] = pair

    @classmethod
    def label(cls) -> str:
        return cls.title or cls.name.capitalize()

    @classmethod
    def symbol_problem(cls, symbol: str) -> str | None:
        """Why ``symbol`` (as configured) cannot be one of this venue's, or None: by default,
        a venue whose symbols separate base and quote (the registry's ``symbol_separator``)
        refuses one without that separator between two parts."""
        from k2.exchanges import venue

        sep = venue(cls.name).symbol_separator
        base, found, quote = symbol.partition(sep) if sep else ("", "", "")
        if not sep or (found and base and quote):
            return None
        return f"{symbol!r} is not BASE{sep}QUOTE (e.g. {cls.default_symbols[0]})"

    @classmethod
    def metadata_url(cls, rest_url: str, symbols: Iterable[str]) -> str | None:
        """The REST URL of current base/quote metadata for ``symbols`` (None: the venue has none)."""
        return None

    @classmethod
    def pairs_from_metadata(cls, doc: Mapping) -> list[Pair]:
        """Pairs from the JSON answer of :meth:`metadata_url` (pure)."""
        raise NotImplementedError(f"{cls.name} has no REST metadata")

    @classmethod
    def listing_url(cls, rest_url: str) -> str | None:
        """The REST URL listing every symbol of the venue (``K2_<NAME>_SYMBOLS=all``)."""
        return cls.metadata_url(rest_url, ())

    @classmethod
    def trading_pairs(cls, doc: Mapping) -> list[Pair]:
        """The pairs currently trading in the JSON answer of :meth:`listing_url` (pure);
        raises ``ValueError`` naming what is wrong with an answer that is not a listing."""
        return cls.pairs_from_metadata(doc)

    @classmethod
    def symbol_weight(cls, symbol: str) -> int:
        """What ``symbol`` costs of a connection's ``limits.per_connection`` (one stream)."""
        return 1

    @property
    def symbols(self) -> list[str]:
        return list(self.pairs)

    def normalize_symbol(self, symbol: str) -> str:
        return symbol

    def pair(self, symbol: str) -> Pair | None:
        """Metadata for a symbol seen on the wire (any listed symbol, not only subscribed ones)."""
        return self.pairs.get(symbol) or self.table.lookup(self.name, symbol)

    def known_pair(self, symbol: str, as_sent: object = None) -> Pair:
        """:meth:`pair`, or ``NormalizeError("unknown_symbol")`` naming the symbol as the
        exchange sent it (``as_sent``, when normalizing changed it)."""
        pair = self.pair(symbol)
        if pair is None:
            shown = symbol if as_sent is None else as_sent
            raise NormalizeError("unknown_symbol", f"symbol {clip(shown)!r} is not in the symbol table")
        return pair

    @abstractmethod
    def stream_url(self, endpoint: str, symbols: Sequence[str] | None = None) -> str:
        """The URL to open for ``endpoint`` (a base URL from the settings), for ``symbols``
        (default: all of :attr:`symbols`) when the venue subscribes by URL."""

    def subscribe_messages(self, symbols: Sequence[str] | None = None) -> list[str]:
        """Text frames subscribing ``symbols`` (default: all of :attr:`symbols`) right after
        connecting (none when the URL subscribes)."""
        return []

    def subscribe_more(self, symbols: Sequence[str]) -> list[str]:
        """Text frames adding ``symbols`` to a connection already streaming others."""
        return self.subscribe_messages(symbols)

    def unsubscribe_messages(self, symbols: Sequence[str]) -> list[str]:
        """Text frames removing ``symbols`` from a connection (delisted symbols)."""
        raise NotImplementedError(f"{self.name} cannot unsubscribe")

    def add_pairs(self, pairs: Iterable[Pair]) -> None:
        """Capture ``pairs`` too (a listing): the table learns them, normalization finds them."""
        pairs = list(pairs)
        self.table = self.table.updated(self.name, pairs)
        self.pairs.update((p.symbol, p) for p in pairs)

    def drop_symbols(self, symbols: Iterable[str]) -> None:
        """Stop capturing ``symbols`` (delisted); the table keeps them for late frames."""
        for symbol in symbols:
            self.pairs.pop(symbol, None)

    def ping_message(self, req_id: int) -> str | None:
        """An application-level ping to send periodically, or None if the exchange has none."""
        return None

    @abstractmethod
    def parse(self, frame: str | bytes, received_us: int) -> Parsed:
        """Parse one text frame received at ``received_us`` (µs since epoch, UTC)."""
