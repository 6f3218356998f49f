"""The small contract every exchange module implements: endpoints, subscribe, parse.

An exchange module knows its wire protocol and nothing about sockets, retries or
Kafka: :mod:`workers.connection` owns the lifecycle, :mod:`workers.run` wires the
pieces. ``parse`` is pure: frame text in, :class:`Parsed` out (or a
:class:`~workers.normalize.NormalizeError` for a frame that is unusable as a whole).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
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


class Exchange(ABC):
    """One exchange's protocol. Subclasses set the class attributes and implement parse."""

    name: ClassVar[str]  # contracts.Exchange.name, e.g. "binance"
    enum_symbol: ClassVar[str]  # the v3 schema's Exchange enum symbol, e.g. "BINANCE"
    sends_heartbeats: ClassVar[bool]  # whether idle connections still deliver data frames
    # Trade ids consecutive per symbol: a jump is a gap, detected and counted (workers.progress).
    sequential_ids: ClassVar[bool] = False
    # And a REST history to fill gaps from (workers.backfill).
    backfills: ClassVar[bool] = False

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
    def stream_url(self, endpoint: str) -> str:
        """The URL to open for ``endpoint`` (a base URL from the settings)."""

    def subscribe_messages(self) -> list[str]:
        """Text frames to send right after connecting (none when the URL subscribes)."""
        return []

    def ping_message(self, req_id: int) -> str | None:
        """An application-level ping to send periodically, or None if the exchange has none."""
        return None

    @abstractmethod
    def parse(self, frame: str | bytes, received_us: int) -> Parsed:
        """Parse one text frame received at ``received_us`` (µs since epoch, UTC)."""
