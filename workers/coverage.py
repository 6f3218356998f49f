"""Which times each symbol's stream was covered by a live subscription, and the holes.

For venues that can neither detect a missing trade (no contiguous trade ids) nor fetch
one again (no REST history), what is published while no connection listens is lost
without a trace in the data. What a worker *can* know is when it was listening: a
symbol is **covered** on a connection from the moment its subscription was confirmed
(the venue's ack of every subscribe request sent on it, or the symbol's first trade on
it, whichever comes first) to the last data frame received on it (a trade or a
heartbeat; a pong proves the socket, not the data, so it does not count). A TCP stream
delivers in order, so nothing published inside that span went missing on the way.

A **hole** is a stretch of time covered by no connection: between the last data of a
connection that died (reconnect, watchdog stall, oversize frame) or of a dead process
(from the state file) and the next confirmation. Overlapping connections (the
make-before-break rotation) leave none. A hole is only final once no live connection
confirmed before its start can still extend the coverage across it (a quiet
connection may deliver again); :meth:`Coverage.take_holes` returns the final ones.

Pure: times are µs of the worker's clock passed in by the caller, no I/O, so the
rules are tested with an injected clock (tests/unit/workers/test_coverage.py).
Everything runs on the worker's main thread.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

RESTART = "restart"  # the reason of a hole that began in an earlier process (state file)


@dataclass(frozen=True)
class Hole:
    symbol: str
    from_us: int  # last moment known covered
    to_us: int  # first moment covered again
    reason: str  # why the coverage before it ended: the connection's close reason, or "restart"
    link: Hashable | None = None  # the connection whose confirmation ended it

    @property
    def seconds(self) -> float:
        return (self.to_us - self.from_us) / 1e6


@dataclass
class _Link:
    acks_missing: int = 0  # requests not yet acknowledged
    unconfirmed: set[str] = field(default_factory=set)  # symbols whose subscription is not confirmed yet
    confirmed_at: dict[str, int] = field(default_factory=dict)
    last_data_us: int = 0


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    reason: str  # close reason ("" while the link is live)
    link: Hashable | None  # the live link, None once closed


class Coverage:
    """Coverage per symbol over the connections of one worker (see the module doc)."""

    def __init__(self, covered_until: dict[str, int] | None = None):
        # The end of the coverage known continuous, per symbol, and why it ended there.
        self.frontier: dict[str, int] = dict(covered_until or {})
        self._reason: dict[str, str] = dict.fromkeys(self.frontier, RESTART)
        self._links: dict[Hashable, _Link] = {}  # by connection (any hashable key: the Link)
        self._live: dict[str, dict[Hashable, int]] = {}  # symbol -> live link -> confirmed at
        self._closed: dict[str, list[_Span]] = {}  # closed spans not yet joined to the frontier
        self._holes: list[Hole] = []

    # events ------------------------------------------------------------------------

    def subscribing(self, link: Hashable, symbols: list[str] | tuple[str, ...], requests: int) -> None:
        """``link`` is sending ``requests`` subscribe requests for ``symbols`` (at connect,
        or symbols listed later)."""
        state = self._links.setdefault(link, _Link())
        state.acks_missing += requests
        state.unconfirmed.update(s for s in symbols if s not in state.confirmed_at)

    def unsubscribing(self, link: Hashable, symbols: list[str] | tuple[str, ...], requests: int) -> None:
        """``symbols`` (delisted) leave ``link``, with ``requests`` requests whose acks must
        not count as subscriptions. A delisted symbol is forgotten: nothing traded after."""
        state = self._links.get(link)
        if state is not None:
            state.acks_missing += requests
            for symbol in symbols:
                state.unconfirmed.discard(symbol)
                state.confirmed_at.pop(symbol, None)
        for symbol in symbols:
            live = self._live.get(symbol, {})
            live.pop(link, None)
            if not live:
                for table in (self.frontier, self._reason, self._live, self._closed):
                    table.pop(symbol, None)

    def data(self, link: Hashable, at_us: int) -> None:
        """A trade or heartbeat frame arrived on ``link`` (the hot path: one store)."""
        state = self._links.get(link)
        if state is not None and at_us > state.last_data_us:
            state.last_data_us = at_us

    def traded(self, link: Hashable, symbol: str, at_us: int) -> None:
        """A trade of ``symbol`` arrived: its subscription on ``link`` works."""
        state = self._links.get(link)
        if state is not None and symbol in state.unconfirmed:
            self._confirm(link, state, (symbol,), at_us)

    def acked(self, link: Hashable, at_us: int) -> None:
        """The venue acknowledged one subscribe request of ``link``; with the last one,
        every symbol of the link is confirmed."""
        state = self._links.get(link)
        if state is None:
            return
        state.acks_missing -= 1
        if state.acks_missing <= 0 and state.unconfirmed:
            self._confirm(link, state, tuple(sorted(state.unconfirmed)), at_us)

    def closed(self, link: Hashable, reason: str) -> list[str]:
        """``link`` is gone; returns the symbols no live connection covers any more."""
        state = self._links.pop(link, None)
        if state is None:
            return []
        uncovered = []
        for symbol, start in state.confirmed_at.items():
            live = self._live.get(symbol, {})
            live.pop(link, None)
            end = max(start, state.last_data_us)
            self._closed.setdefault(symbol, []).append(_Span(start, end, reason, None))
            self._settle(symbol)
            if not live:
                uncovered.append(symbol)
        return uncovered

    # queries -----------------------------------------------------------------------

    def take_holes(self) -> list[Hole]:
        holes, self._holes = self._holes, []
        return holes

    def covered_until(self, symbol: str) -> int | None:
        """The last moment the symbol is known covered without a hole since the last one
        reported: what a restarted process starts its first hole from."""
        mark = self.frontier.get(symbol)
        if mark is None:
            return None
        for link, start in self._live.get(symbol, {}).items():
            if start <= mark:
                mark = max(mark, self._links[link].last_data_us)
        return mark

    def symbols(self) -> list[str]:
        return sorted(set(self.frontier) | set(self._live))

    def is_covered(self, symbol: str) -> bool:
        return bool(self._live.get(symbol))

    # internals ---------------------------------------------------------------------

    def _confirm(self, link: Hashable, state: _Link, symbols: tuple[str, ...], at_us: int) -> None:
        for symbol in symbols:
            state.unconfirmed.discard(symbol)
            state.confirmed_at[symbol] = at_us
            self._live.setdefault(symbol, {})[link] = at_us
            self._settle(symbol)

    def _settle(self, symbol: str) -> None:
        """Join the symbol's spans (closed ones and live links) onto its frontier, turning
        every final hole into a :class:`Hole`."""
        spans = list(self._closed.get(symbol, ()))
        spans += [_Span(start, max(start, self._links[link].last_data_us), "", link)
                  for link, start in self._live.get(symbol, {}).items()]
        spans.sort(key=lambda s: (s.start, s.end))
        mark = self.frontier.get(symbol)
        reason = self._reason.get(symbol, RESTART)
        extendable = False  # a live link joined to the frontier may still carry it across a hole
        kept: list[_Span] = []
        for span in spans:
            if mark is None:  # never covered before: coverage starts here, no hole
                mark = span.start
            if span.start > mark:
                if extendable:
                    if span.link is None:
                        kept.append(span)
                    continue
                self._holes.append(Hole(symbol, mark, span.start, reason, span.link))
                mark = span.start
            if span.end >= mark:
                mark, reason = span.end, span.reason
            extendable = extendable or span.link is not None
        if mark is not None:
            self.frontier[symbol] = mark
            self._reason[symbol] = reason or RESTART
        self._closed[symbol] = kept
