"""A worker's connections: its symbols split into shards, one connection manager each,
all read by one select loop in the worker's thread.

The planner (:mod:`workers.shard_plan`) places the symbols within the venue's declared
:class:`~workers.base.ConnectionLimits`; each shard is a
:class:`~workers.connection.ConnectionManager` of its own (reconnect, rotation, watchdog,
pings), so a shard that drops reconnects alone while the others keep streaming. Gaps are
per symbol already (:mod:`workers.progress`): the dropped shard's symbols are backfilled
on venues with contiguous ids, and ``on_reconnected`` lets the worker probe them at once.

Paced here, for all shards: new connections (the venue's per-IP rate, one window shared
by the shards' connect gates) and the subscribe/unsubscribe messages of each connection
(its per-connection rate), which are queued per connection rather than sent at connect.
Symbols listed while running go to a shard with room, else a new one; delisted ones are
unsubscribed; shards whose symbols did not change are not touched.
"""

from __future__ import annotations

import select
import time
from collections import deque
from collections.abc import Callable, Sequence

import websocket

from k2.log import EventLog
from workers.base import Exchange
from workers.connection import ConnectionManager, FrameHandler, Link, LinkObserver, OversizeHandler
from workers.settings import WorkerSettings
from workers.shard_plan import ShardingError, SlidingWindow, place, plan_shards
from workers.stats import ShardState, WorkerStats


class ShardStats:
    """What one shard's manager writes into the worker's stats: counters and data time are
    the worker's own; ``connected`` is the shard's, and the worker is connected while any
    shard is. A shard connecting again while others stayed up calls ``on_reconnected``
    with its symbols (the worker's first connect, or its return after every shard was
    down, is the recovery's own probe of all symbols)."""

    def __init__(self, worker: WorkerStats, state: ShardState, symbols: Callable[[], list[str]],
                 on_reconnected: Callable[[list[str]], None] | None):
        self.worker = worker
        self.state = state
        self.errors = worker.errors
        self.reconnects = worker.reconnects
        self._symbols = symbols
        self._on_reconnected = on_reconnected
        self._was_connected = False

    @property
    def last_data_at(self) -> float:
        return self.worker.last_data_at

    @last_data_at.setter
    def last_data_at(self, value: float) -> None:
        self.worker.last_data_at = value

    @property
    def connected(self) -> bool:
        return self.state.connected

    @connected.setter
    def connected(self, value: bool) -> None:
        again = value and not self.state.connected and self._was_connected
        self.state.connected = value
        self._was_connected = self._was_connected or value
        others_up = self.worker.connected
        self.worker.connected = any(s.connected for s in self.worker.shards.values())
        if again and others_up and self._on_reconnected is not None:
            self._on_reconnected(self._symbols())


class Shard:
    """Some of the worker's symbols on one logical connection (its manager's links)."""

    def __init__(self, shard_id: int, symbols: list[str]):
        self.id = shard_id
        self.symbols = symbols
        self.manager: ConnectionManager
        self.state = ShardState(symbols=len(symbols))
        # Messages still to send on each open connection, and that connection's pace.
        self.outbox: dict[Link, deque[str]] = {}
        self.pacers: dict[Link, SlidingWindow] = {}


class ShardView:
    """A shard's face of the exchange for its manager: the URL for the shard's symbols,
    and no subscribe messages at connect (the shard set sends them, paced)."""

    def __init__(self, exchange: Exchange, shard: Shard):
        self.exchange = exchange
        self.shard = shard
        self.name = exchange.name

    def stream_url(self, endpoint: str) -> str:
        return self.exchange.stream_url(endpoint, self.shard.symbols)

    def subscribe_messages(self) -> list[str]:
        return []

    def ping_message(self, req_id: int) -> str | None:
        return self.exchange.ping_message(req_id)


class ShardSet:
    """The worker's shards: planned at construction (nothing connects before :meth:`turn`),
    changed by :meth:`add` and :meth:`remove`. ``max_symbols`` caps symbols per connection
    below the venue's limits (K2_WORKERS_SHARD_MAX_SYMBOLS, tests and benchmarks)."""

    def __init__(self, exchange: Exchange, settings: WorkerSettings, handle_frame: FrameHandler,
                 stats: WorkerStats, log: EventLog, *, on_oversize: OversizeHandler | None = None,
                 on_reconnected: Callable[[list[str]], None] | None = None,
                 max_symbols: int | None = None, clock: Callable[[], float] = time.monotonic,
                 observer: LinkObserver | None = None):
        self.exchange, self.settings, self.handle_frame = exchange, settings, handle_frame
        self.observer = observer  # told what each connection subscribes (workers.loss_window)
        self.stats, self.log, self.clock = stats, log, clock
        self.on_oversize, self.on_reconnected = on_oversize, on_reconnected
        self.limits = exchange.limits
        self.max_symbols = max_symbols or None
        self.connects = SlidingWindow(self.limits.connects.count, self.limits.connects.window_s)
        self.shards: list[Shard] = []
        self._next_id = 1
        plan = self._plan(exchange.symbols)
        for symbols in plan:
            self._add_shard(symbols)
        log.info("shards_planned", shards=len(plan), symbols=len(exchange.symbols),
                 per_shard=[len(s) for s in plan], per_connection=self.limits.per_connection,
                 max_symbols=self.max_symbols)

    # the loop -------------------------------------------------------------------------

    def run(self, should_stop: Callable[[], bool], after_turn: Callable[[], None],
            sleep: Callable[[float], None] = time.sleep) -> None:
        """Turns until ``should_stop``, at most one per ``K2_WORKERS_READ_INTERVAL_MS`` while
        nothing is left buffered: on a 2-core machine each wake-up of a quiet worker cost
        more than the trades it read, so a trickle is read in batches (an at-most-100 ms
        delay, by default); a backlog is read turn after turn, without pause."""
        interval_s = self.settings.read_interval_ms / 1000
        while not should_stop():
            started = self.clock()
            self.turn()
            after_turn()
            if interval_s and not self.backlog():
                rest = interval_s - (self.clock() - started)
                if rest > 0:
                    sleep(rest)

    def turn(self, max_wait_s: float = 0.05) -> None:
        """One round for every shard: timers and connects, paced sends, then one select
        over all open connections and a read of each ready one by its own manager."""
        now = self.clock()
        for shard in self.shards:
            shard.manager.maintain(now)
        self._send(now)
        owners = {link: shard for shard in self.shards for link in shard.manager.links if not link.closed}
        if not owners:
            time.sleep(max_wait_s)
            return
        ready = [link for link in owners if link.has_buffered()]
        if not ready:
            try:
                ready, _, _ = select.select(list(owners), [], [], max_wait_s)
            except (OSError, ValueError, AttributeError):  # a socket closed under us: found on read
                ready = list(owners)
        for link in ready:
            if not link.closed:
                owners[link].manager.read(link)

    def backlog(self) -> bool:
        """Whether a connection holds frames that the last turn left unread (its cap), or
        its last socket read was large (connection.BUSY_READ_BYTES: the socket holds more)."""
        return any(link.has_buffered() or link.reader.more_waiting
                   for shard in self.shards for link in shard.manager.links if not link.closed)

    def close_all(self, reason: str = "shutdown") -> None:
        for shard in self.shards:
            shard.manager.close_all(reason)

    def links(self) -> list[Link]:
        return [link for shard in self.shards for link in shard.manager.links if not link.closed]

    @property
    def symbols(self) -> list[str]:
        return [s for shard in self.shards for s in shard.symbols]

    # listings and delistings -------------------------------------------------------------

    def add(self, symbols: Sequence[str]) -> None:
        """Subscribe ``symbols`` too: on shards with room (their open connections get a
        subscribe message), else on new shards; no other shard is touched."""
        added, fresh = place([s.symbols for s in self.shards], symbols, self.exchange.symbol_weight,
                             self.limits.per_connection, self.max_symbols)
        for index, new in added.items():
            shard = self.shards[index]
            shard.symbols.extend(new)
            shard.state.symbols = len(shard.symbols)
            messages = self.exchange.subscribe_more(new)
            for link in self._queue(shard, messages):
                if self.observer is not None:
                    self.observer.subscribing(link, new, len(messages))
            self.log.info("shard_subscribing", shard=shard.id, symbols=new, total=len(shard.symbols))
        for new in fresh:
            shard = self._add_shard(new)
            self.log.info("shard_added", shard=shard.id, symbols=new)

    def remove(self, symbols: Sequence[str]) -> None:
        """Unsubscribe ``symbols``; a shard left without symbols is closed."""
        gone = set(symbols)
        for shard in list(self.shards):
            leaving = [s for s in shard.symbols if s in gone]
            if not leaving:
                continue
            shard.symbols = [s for s in shard.symbols if s not in gone]
            shard.state.symbols = len(shard.symbols)
            # Unsubscribed on the shard's connections, or gone with the shard's last symbol.
            messages = self.exchange.unsubscribe_messages(leaving) if shard.symbols else []
            for link in self._queue(shard, messages) if shard.symbols else list(shard.manager.links):
                if self.observer is not None:
                    self.observer.unsubscribing(link, leaving, len(messages))
            if shard.symbols:
                self.log.info("shard_unsubscribing", shard=shard.id, symbols=leaving, total=len(shard.symbols))
                continue
            shard.manager.close_all("delisted")
            self.shards.remove(shard)
            del self.stats.shards[shard.id]
            self.stats.connected = any(s.connected for s in self.stats.shards.values())
            self.log.info("shard_closed", shard=shard.id, symbols=leaving, reason="every symbol delisted")

    # internals ---------------------------------------------------------------------------

    def _plan(self, symbols: Sequence[str]) -> list[list[str]]:
        plan = plan_shards(symbols, self.exchange.symbol_weight, self.limits.per_connection, self.max_symbols)
        cap = self.limits.max_connections
        if cap is not None and len(self.shards) + len(plan) > cap:
            raise ShardingError(f"{len(symbols)} {self.exchange.name} symbols need {len(plan)} connections; "
                                f"the venue allows {cap} per IP")
        return plan

    def _add_shard(self, symbols: list[str]) -> Shard:
        shard = Shard(self._next_id, list(symbols))
        self._next_id += 1
        self.stats.shards[shard.id] = shard.state
        shard_stats = ShardStats(self.stats, shard.state, lambda: list(shard.symbols), self.on_reconnected)
        shard.manager = ConnectionManager(
            ShardView(self.exchange, shard), self.settings, self.handle_frame, shard_stats,  # type: ignore[arg-type]
            self.log.bind(shard=shard.id), clock=self.clock, on_oversize=self.on_oversize,
            connect_gate=self._connect_gate,
            observer=self.observer,
        )
        self.shards.append(shard)
        return shard

    def _connect_gate(self, now: float) -> float:
        wait = self.connects.wait(now)
        if wait == 0.0:
            self.connects.take(now)
        return wait

    def _queue(self, shard: Shard, messages: list[str]) -> list[Link]:
        """Queue ``messages`` on the shard's open connections; returns those connections."""
        queued = []
        for link, queue in shard.outbox.items():
            if not link.closed and link.role != "retiring":
                queue.extend(messages)
                queued.append(link)
        return queued

    def _send(self, now: float) -> None:
        """Subscribe new connections to their shard's symbols and send what is queued, each
        connection within the venue's message rate."""
        for shard in self.shards:
            for link in shard.manager.links:
                if link.closed or link.role == "retiring":
                    continue
                queue = shard.outbox.get(link)
                if queue is None:  # opened this turn: it carries the shard's current symbols
                    queue = shard.outbox[link] = deque(self.exchange.subscribe_messages(shard.symbols))
                    if self.observer is not None:
                        self.observer.subscribing(link, list(shard.symbols), len(queue))
                    shard.pacers[link] = SlidingWindow(self.limits.messages.count, self.limits.messages.window_s)
                pacer = shard.pacers[link]
                while queue and pacer.take(now):
                    try:
                        link.ws.send(queue[0])
                    except (websocket.WebSocketException, OSError) as exc:
                        shard.manager.fail(link, "connection_error", f"subscribe failed: {exc}")
                        break
                    queue.popleft()
            for link in [k for k in shard.outbox if k.closed]:
                del shard.outbox[link], shard.pacers[link]
