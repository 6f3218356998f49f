"""The exchange simulator: one local WebSocket server speaking every registered venue's protocol.

One server on 127.0.0.1 serves the venues by path, like the real hosts do: each venue's
protocol (``workers/simulator/venues/<name>.py``, named by its worker class) says which
WebSocket paths and which REST path prefix are its own, and brings the session class
that speaks its protocol (subscribe handling, frames, heartbeats) and its REST trade
history (gap backfill), served by plain HTTP GETs on the same port from the same tape.
This module routes and runs the market; it knows no venue.

Faults are configurable per connection (lifetime cut-off, the venue's shutdown notice,
abrupt disconnect, silent stall, trades silently left out of the stream) and per frame
(malformed frames, duplicate trades), all from a seed; REST can answer as rate-limited
(in the venue's way) and serves only ``rest_history`` trades per symbol.
The record (JSON lines) lists every trade the market published (``published``: the
ground truth of a complete history) and exactly what each connection was sent:
every trade with its wire text, every trade left out (``dropped``), every bad frame,
every REST answer, every connection event, so tests compare Kafka against it without
using worker code.

A full market: ``universe`` gives a venue thousands of generated symbols (see
:mod:`workers.simulator.universe`), served by its REST metadata with their trading
status; ``rates`` sets each venue's trades/s and ``bursts`` multiplies them for a while
(:mod:`workers.simulator.schedule`). The venues' per-connection limits are always
enforced (a client past one is refused the venue's way and the record says so,
``ev: limit``); their per-IP connection rates with ``connect_limits``. At runtime a
symbol can be listed or delisted and one connection (a shard) dropped, in-process or
over HTTP GETs under ``/_sim/`` on the same port (:mod:`workers.simulator.control`).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import websockets.http11
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from workers.simulator import control
from workers.simulator.market import ARCHIVE_DEPTH, SNAPSHOT_DEPTH, SimTrade, Tape
from workers.simulator.schedule import Bursts
from workers.simulator.session import RateWindow, Recorder, Session, now_us, ws_text_frame
from workers.simulator.universe import Listing, check_symbol, generate
from workers.simulator.venues import VenueProtocol, protocol_classes
from workers.symbols import SymbolTable

__all__ = ["Recorder", "Session", "Simulator", "SimulatorConfig", "SimulatorThread", "read_record",
           "ws_text_frame"]

WRITE_HIGH_WATER = 1 << 20  # rate 0: bytes buffered per connection before the market waits
# At a fixed rate the market waits for nobody (a venue does not slow down for one slow
# client); a connection with this much unsent is dropped as a slow consumer, as venues do.
SLOW_CONSUMER_BYTES = 64 << 20
DEFAULT_SYMBOLS_PER_VENUE = 2  # the first of each venue's default symbols a simulator serves
UNLIMITED = 1_000_000  # a rate no client reaches: the venue states no per-IP message limit
# A Binance URL naming 1,024 streams is about 20 KB: longer than websockets' default request
# line (8 KB), which would refuse it before the venue's own limit could.
websockets.http11.MAX_LINE_LENGTH = max(websockets.http11.MAX_LINE_LENGTH, 64 * 1024)
ARCHIVE_BUDGET = 250_000  # archived trades per venue, shared by its symbols (a full market's memory bound)
# The most trades one tick publishes, in seconds of the venue's rate: a loop descheduled on
# a busy machine catches up on up to a second at once, not more.
MAX_CATCH_UP_S = 1.0


def default_symbols() -> dict[str, tuple[str, ...]]:
    from workers.exchanges import exchange_classes

    return {name: cls.default_symbols[:DEFAULT_SYMBOLS_PER_VENUE] for name, cls in exchange_classes().items()}


@dataclass
class SimulatorConfig:
    host: str = "127.0.0.1"
    port: int = 0  # 0: pick a free port (printed / available as .port)
    # Symbols per venue (a venue left out is served with none); default: its first two defaults.
    symbols: dict[str, tuple[str, ...]] = field(default_factory=default_symbols)
    rate: float = 50.0  # trades per second per exchange; 0 = as fast as the clients read
    batch: int = 5  # most trades in one message, on venues that batch them (Kraken)
    malformed_rate: float = 0.0  # chance per trade frame of an extra malformed frame
    duplicate_rate: float = 0.0  # chance per trade frame of sending it twice
    # Per venue: chance per live trade (never a snapshot) that a connection silently skips it.
    drop_rates: dict[str, float] = field(default_factory=dict)
    rest_history: int = ARCHIVE_DEPTH  # REST: trades per symbol kept (historicalTrades, Trades); older: not served
    exponent_rate: float = 0.1  # chance a Kraken qty is written in exponent form
    lifetime_s: float | None = None  # close every connection after this long (Binance: 24 h)
    shutdown_after_s: float | None = None  # the venue's shutdown notice (if any) after this long ...
    shutdown_grace_s: float = 2.0  # ... then close this much later
    disconnect_after_s: float | None = None  # abrupt close (no close frame) after this long
    stall_after_s: float | None = None  # stop sending data and heartbeats after this long ...
    stall_for_s: float = 0.0  # ... for this long (pings still answered)
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 60.0
    heartbeat_s: float = 1.0
    seed: int = 1
    record: str | None = None  # JSON-lines file of everything sent
    tick_s: float = 0.01
    paused: bool = False  # the market publishes nothing while set (a test holds it still)
    # Full market: venue -> number of symbols of a generated universe (replaces its ``symbols``).
    universe: dict[str, int] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)  # venue -> trades/s (instead of ``rate``)
    bursts: Bursts | None = None  # periodic rate multiplier
    record_sent: bool = True  # a ``trade`` line per trade sent; False: only each symbol's span of ids sent
    connect_limits: bool = False  # enforce each venue's new-connections-per-IP limit (HTTP 429)
    archive_budget: int = ARCHIVE_BUDGET

    @classmethod
    def throughput(cls, venue: str, symbols: int = 0, rate: float = 0.0, **overrides: Any) -> SimulatorConfig:
        """One venue as fast as its clients read (``rate=0``, TCP pushes back), the others
        serving nothing: what a worker's throughput is measured against. ``symbols``: a
        generated universe of that many instead of the venue's first two defaults."""
        from workers.exchanges import exchange_class

        return cls(symbols={venue: exchange_class(venue).default_symbols[:DEFAULT_SYMBOLS_PER_VENUE]},
                   universe={venue: symbols} if symbols else {}, rate=rate, **overrides)



@dataclass
class Market:
    exchange: str
    tape: Tape
    venue: VenueProtocol
    sessions: set[Session] = field(default_factory=set)


class Simulator:
    def __init__(self, cfg: SimulatorConfig):
        self.cfg = cfg
        self.recorder = Recorder(cfg.record, sent_lines=cfg.record_sent)
        table = SymbolTable.shipped()
        self.markets: dict[str, Market] = {}
        for index, (name, protocol) in enumerate(protocol_classes().items()):
            listings = _listings(table, name, protocol, cfg)
            trading = [item for item in listings if item.trading]
            depth = min(cfg.rest_history, max(2 * SNAPSHOT_DEPTH, cfg.archive_budget // max(1, len(listings))))
            tape = Tape([i.symbol for i in trading], {i.symbol: i.base for i in trading}, cfg.seed * 2 + index,
                        protocol.price_decimals, pad_to=protocol.pad_to, archive_depth=depth,
                        prices={i.symbol: i.price for i in trading if i.price})
            self.markets[name] = Market(name, tape, protocol(tape, {i.symbol: i for i in listings}))
        self.tapes = {name: market.tape for name, market in self.markets.items()}
        # Per IP over all connections, where the venue states it so (its sessions enforce the rest).
        self.client_messages = {name: RateWindow(m.venue.client_messages_per_s or UNLIMITED, 1.0)
                                for name, m in self.markets.items()}
        self._connect_tokens = {name: (float(m.venue.connect_limit.burst), time.monotonic())
                                for name, m in self.markets.items() if m.venue.connect_limit}
        self.limit_violations = dict.fromkeys(self.markets, 0)
        self.published_total = dict.fromkeys(self.markets, 0)
        self.behind = dict.fromkeys(self.markets, 0)  # trades the rate asked for but a loop behind skipped
        self.multiplier = 1.0
        self.started_at = 0.0  # loop time the market started (the burst schedule's zero)
        # The longest prefix first, so one venue's /api/v5/ is not taken for another's /api/.
        self._rest_routes = sorted((m for m in self.markets.values() if m.venue.rest_prefix),
                                   key=lambda m: len(m.venue.rest_prefix or ""), reverse=True)
        self.port = cfg.port
        self._server: Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._next_conn = 0
        self.connections_opened = dict.fromkeys(self.markets, 0)
        self.rest_throttle = 0  # answer this many REST requests with 429 ...
        self.rest_retry_after_s = 1  # ... and this Retry-After
        self.rest_requests = 0

    # lifecycle ---------------------------------------------------------------------

    async def start(self) -> int:
        cfg = self.cfg
        self._server = await serve(
            self._handle, cfg.host, cfg.port, compression=None,
            ping_interval=cfg.ping_interval_s, ping_timeout=cfg.ping_timeout_s, max_size=1 << 20,
            close_timeout=1.0, process_request=self._process_request,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self.started_at = asyncio.get_running_loop().time()
        for market in self.markets.values():
            self.spawn(self._run_market(market))
        if cfg.bursts is not None:
            self.spawn(self._run_schedule(cfg.bursts))
        self.recorder.write(ev="listening", port=self.port, seed=cfg.seed, rate=cfg.rate, rates=cfg.rates,
                            universe={n: len(m.venue.listings) for n, m in self.markets.items()},
                            time_us=now_us())
        self.recorder.flush()
        return self.port

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            self._server.close(close_connections=True)
            try:
                await asyncio.wait_for(self._server.wait_closed(), 5.0)
            except TimeoutError:
                pass  # a client that never answers the close handshake
        self.recorder.flush()
        self.recorder.close()

    def spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # controls (call on the simulator's loop; SimulatorThread.call does that) --------

    def sessions(self, exchange: str) -> list[Session]:
        return [s for s in self.markets[exchange].sessions if not s.closed]

    def disconnect(self, exchange: str, how: str = "abort") -> int:
        """Drop every connection of ``exchange``: ``abort`` (no close frame), ``close``,
        or ``shutdown`` (the venue's shutdown notice first, where it has one)."""
        victims = self.sessions(exchange)
        for s in victims:
            self._drop(s, how)
        return len(victims)

    def _drop(self, s: Session, how: str) -> None:
        if how == "abort":
            self.spawn(s.abort())
        elif how == "close":
            self.spawn(s.close(1001, "connection lifetime exceeded"))
        elif how == "shutdown":
            self.spawn(s.notify_shutdown())
        else:
            raise ValueError(f"how={how!r}: abort, close or shutdown")

    def stall(self, exchange: str, seconds: float) -> int:
        victims = self.sessions(exchange)
        for s in victims:
            s.stalled_until = time.monotonic() + seconds
            self.recorder.write(ev="control", exchange=exchange, conn=s.id, kind="stall", seconds=seconds)
        return len(victims)

    def drop(self, exchange: str, trades: int) -> int:
        """Every open connection of ``exchange`` silently leaves out its next ``trades`` trades."""
        victims = self.sessions(exchange)
        for s in victims:
            s.drop_next += trades
        return len(victims)

    def throttle_rest(self, requests: int, retry_after_s: int = 1) -> None:
        """Answer the next ``requests`` REST requests as over the rate limit, each venue in
        its way (a 429 with ``Retry-After``, an error in an HTTP 200, ...)."""
        self.rest_throttle, self.rest_retry_after_s = requests, retry_after_s

    def list_symbol(self, exchange: str, symbol: str, base: str, quote: str, price: str | None = None,
                    trading: bool = True) -> Listing:
        """List ``symbol`` on ``exchange`` now: it appears in the venue's metadata and, if
        ``trading``, trades from the next tick on (``trading=False`` lists it with the
        venue's not-trading status; list it again with ``trading=True`` to open it)."""
        market = self.markets[exchange]
        listing = Listing(check_symbol(symbol), base, quote, price, trading)
        market.venue.listed(listing)
        if trading:
            market.tape.list(symbol, base, price)
        else:
            market.tape.delist(symbol)
        self.recorder.write(ev="control", exchange=exchange, kind="list", symbol=symbol, base=base, quote=quote,
                            trading=trading, time_us=now_us())
        self.recorder.flush()
        return listing

    def delist_symbol(self, exchange: str, symbol: str) -> bool:
        """Delist ``symbol``: gone from the metadata, no more trades (subscriptions stay
        silent, as on a venue). False if it was not listed."""
        market = self.markets[exchange]
        if symbol not in market.venue.listings:
            return False
        market.venue.delisted(symbol)
        market.tape.delist(symbol)
        self.recorder.write(ev="control", exchange=exchange, kind="delist", symbol=symbol,
                            last_id=market.tape.next_id.get(symbol, 0) - 1, time_us=now_us())
        self.recorder.flush()
        return True

    def disconnect_one(self, exchange: str, index: int | None = None, symbol: str | None = None,
                       how: str = "abort") -> int | None:
        """Drop ONE connection of ``exchange`` (a single shard): the ``index``-th open one
        in the order they connected, or the first that serves ``symbol``; ``how`` as in
        :meth:`disconnect`. Its id, or None when there is no such connection."""
        open_sessions = sorted(self.sessions(exchange), key=lambda s: s.id)
        victim: Session | None
        if symbol is not None:
            victim = next((s for s in open_sessions if symbol in s.subscribed), None)
        else:
            at = index or 0
            victim = open_sessions[at] if -len(open_sessions) <= at < len(open_sessions) else None
        if victim is None:
            return None
        self.recorder.write(ev="control", exchange=exchange, conn=victim.id, kind="disconnect_one", how=how,
                            symbols=len(victim.subscribed))
        self._drop(victim, how)
        return victim.id

    def stats(self) -> dict[str, Any]:
        """What the simulator did so far and what it cost: CPU seconds of the thread running
        its loop (call it on the loop: ``SimulatorThread.call``), trades published per
        venue and those its rate asked for but a CPU-starved loop skipped (``behind``), open
        connections, limit violations, the current rate multiplier."""
        return {
            "cpu_s": round(time.thread_time(), 3),
            "published": dict(self.published_total),
            "behind": dict(self.behind),
            "connections": {name: len(self.sessions(name)) for name in self.markets},
            "subscribed": {name: len({s for ses in self.sessions(name) for s in ses.subscribed})
                           for name in self.markets},
            "listed": {name: len(m.venue.listings) for name, m in self.markets.items()},
            "limit_violations": dict(self.limit_violations),
            "multiplier": self.multiplier,
            "connections_opened": dict(self.connections_opened),
            # Bytes written to connections but not yet taken by the client (0: all delivered).
            "unsent_bytes": {name: sum(s.backlog() for s in self.sessions(name)) for name in self.markets},
            "paused": self.cfg.paused,
        }

    def pause(self, paused: bool) -> None:
        """Hold the market still (no trades published) or let it trade again; connections,
        pings and REST go on."""
        self.cfg.paused = paused
        self.recorder.write(ev="control", kind="pause" if paused else "resume", time_us=now_us())
        self.recorder.flush()

    def sent_spans(self) -> list[tuple[str, str, int, int]]:
        """(exchange, symbol, first id, last id) sent so far, with ``record_sent`` off."""
        return [(ex, sym, first, last) for (ex, sym), (first, last) in sorted(self.recorder.spans.items())]

    def over_limit(self, exchange: str, conn: int | None, limit: str, detail: str) -> None:
        """A client went past one of the venue's limits: counted and recorded."""
        self.limit_violations[exchange] += 1
        self.recorder.write(ev="limit", exchange=exchange, conn=conn, limit=limit, detail=detail, time_us=now_us())
        self.recorder.flush()

    def inject_bad(self, exchange: str, kind: str) -> int:
        tape = self.tapes[exchange]
        victims = self.sessions(exchange)
        trade = tape.next(now_us())  # a real tape trade, sent only in its broken form
        self._published(exchange, [trade])
        for s in victims:
            s.send_bad(kind, trade)
        self.recorder.flush()
        return len(victims)

    # internals ---------------------------------------------------------------------

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        """Plain HTTP GETs under a venue's REST prefix are its REST, under ``/_sim/`` the
        control channel; anything else is a WebSocket handshake (refused with 429 past the
        venue's connection rate, with ``connect_limits``)."""
        url = urllib.parse.urlsplit(request.path)
        if url.path.startswith(control.PREFIX):
            status, doc = control.answer(self, url.path, urllib.parse.parse_qs(url.query))
            return _response(status, json.dumps(doc))
        market = next((m for m in self._rest_routes if url.path.startswith(m.venue.rest_prefix or "")), None)
        if market is None:
            return self._admit(url.path)
        exchange = market.exchange
        self.rest_requests += 1
        query = urllib.parse.parse_qs(url.query)
        throttled = self.rest_throttle > 0
        if throttled:
            self.rest_throttle -= 1
        reply = (market.venue.rate_limited(self.rest_retry_after_s) if throttled
                 else market.venue.answer(url.path, query, request.headers))
        self.recorder.write(
            ev="rest", exchange=exchange, path=url.path, query=url.query, status=reply.status, throttled=throttled,
            count=len(reply.trades), symbol=reply.trades[0].symbol if reply.trades else None,
            first_id=reply.trades[0].trade_id if reply.trades else None,
            last_id=reply.trades[-1].trade_id if reply.trades else None,
        )
        self.recorder.flush()
        return _response(reply.status, reply.body, reply.headers)

    def _admit(self, path: str) -> Response | None:
        """None (go on with the handshake), or the 429 of a venue whose new-connection
        rate per IP the client went past (a token bucket, see ``ConnectLimit``)."""
        market = next((m for m in self.markets.values() if path.rstrip("/") in m.venue.ws_paths), None)
        limit = market.venue.connect_limit if market is not None else None
        if not self.cfg.connect_limits or market is None or limit is None:
            return None
        tokens, at = self._connect_tokens[market.exchange]
        now = time.monotonic()
        tokens = min(float(limit.burst), tokens + (now - at) * limit.per_s)
        if tokens < 1:
            self._connect_tokens[market.exchange] = (tokens, now)
            self.over_limit(market.exchange, None, "connects_per_ip", limit.stated)
            return _response(429, json.dumps({"error": f"too many connection attempts: {limit.stated}"}))
        self._connect_tokens[market.exchange] = (tokens - 1, now)
        return None

    def _published(self, exchange: str, trades: list[SimTrade]) -> None:
        """Record what the market published: the complete history a client could recover."""
        self.published_total[exchange] += len(trades)
        self.recorder.published(exchange, trades)

    async def _handle(self, conn: ServerConnection) -> None:
        url = urllib.parse.urlsplit(conn.request.path)
        query = urllib.parse.parse_qs(url.query)
        self._next_conn += 1
        conn_id = self._next_conn
        path = url.path.rstrip("/")
        market = next((m for m in self.markets.values() if path in m.venue.ws_paths), None)
        if market is None:
            paths = ", ".join(p or "/" for m in self.markets.values() for p in m.venue.ws_paths)
            await conn.close(1008, f"unknown path {url.path}; the venues' paths are {paths}")
            return
        session = market.venue.session(self, conn, conn_id, query)
        exchange = session.exchange
        self.connections_opened[exchange] += 1
        self.recorder.write(ev="conn_open", exchange=exchange, conn=conn_id, path=conn.request.path)
        await session.on_open()
        market.sessions.add(session)
        faults = self._schedule_faults(session)
        try:
            async for message in conn:
                await session.on_message(message if isinstance(message, str) else message.decode())
        except Exception:  # noqa: BLE001 - a broken client must not take the simulator down
            pass
        finally:
            market.sessions.discard(session)
            for task in faults:
                task.cancel()
            if not session.closed:
                session.closed = True
                self.recorder.write(ev="conn_close", exchange=exchange, conn=conn_id, how="client",
                                    code=conn.close_code)
            self.recorder.flush()

    def _schedule_faults(self, s: Session) -> list[asyncio.Task]:
        cfg = self.cfg

        def after(delay: float | None, action: Callable[[], Any]) -> asyncio.Task | None:
            if delay is None:
                return None

            async def fire() -> None:
                await asyncio.sleep(delay)
                await action()

            return self.spawn(fire())

        async def stall() -> None:
            s.stalled_until = time.monotonic() + cfg.stall_for_s
            self.recorder.write(ev="control", exchange=s.exchange, conn=s.id, kind="stall", seconds=cfg.stall_for_s)

        tasks = [
            after(cfg.lifetime_s, lambda: s.close(1001, "connection lifetime exceeded")),
            after(cfg.shutdown_after_s, s.notify_shutdown),
            after(cfg.disconnect_after_s, s.abort),
            after(cfg.stall_after_s, stall),
        ]
        return [t for t in tasks if t is not None]

    async def _run_schedule(self, bursts: Bursts) -> None:
        loop = asyncio.get_running_loop()
        while True:
            multiplier = bursts.multiplier(loop.time() - self.started_at)
            if multiplier != self.multiplier:
                self.multiplier = multiplier
                self.recorder.write(ev="rate", multiplier=multiplier, time_us=now_us())
            await asyncio.sleep(self.cfg.tick_s)

    async def _run_market(self, market: Market) -> None:
        """One venue's tape: each tick, the trades due at its rate (one batch, offered to
        every connection), or, at rate 0, batches as fast as the slowest reader takes them."""
        cfg, loop = self.cfg, asyncio.get_running_loop()
        last, carry = loop.time(), 0.0
        while True:
            rate = cfg.rates.get(market.exchange, cfg.rate)  # read at each tick, like the rest of the config
            if cfg.paused or not market.tape.symbols:
                self.recorder.flush()  # what was sent before the pause is on disk for the test
                await asyncio.sleep(cfg.tick_s)
                last = loop.time()  # no backlog of trades when it resumes
                continue
            if rate > 0:
                await asyncio.sleep(cfg.tick_s)
                if cfg.paused:  # paused while this tick slept: it publishes nothing
                    continue
                now = loop.time()
                carry += (now - last) * rate * self.multiplier
                last = now
                n = int(carry)
                carry -= n
                # A loop that fell behind (CPU starved) publishes at most MAX_CATCH_UP_S of
                # trades at once: a bigger batch would hold the loop (handshakes, pings,
                # REST) as long again and fall further behind. What it skips is counted
                # (``behind``), not published.
                most = max(1, int(rate * self.multiplier * MAX_CATCH_UP_S))
                if n > most:
                    self.behind[market.exchange] += n - most
                    n = most
            else:  # as fast as the slowest reader
                n = 1000 if market.sessions else 0
                if not n:
                    await asyncio.sleep(0.01)
                    continue
            if not n:
                continue
            ts = now_us()
            batch = [market.tape.next(ts) for _ in range(n)]
            self._published(market.exchange, batch)
            for session in list(market.sessions):
                session.offer_batched(batch)
            self.recorder.flush()
            if rate <= 0:  # throughput mode: as fast as the slowest reader takes it
                while any(s.backlog() > WRITE_HIGH_WATER for s in market.sessions):
                    await asyncio.sleep(0.001)
                await asyncio.sleep(0)
            else:
                for slow in [s for s in market.sessions if s.backlog() > SLOW_CONSUMER_BYTES]:
                    self.over_limit(market.exchange, slow.id, "slow_consumer",
                                    f"{slow.backlog():,} bytes unsent > {SLOW_CONSUMER_BYTES:,}")
                    slow.closed = True  # sends nothing more; dropped without flushing what it could not take
                    self.recorder.write(ev="conn_close", exchange=market.exchange, conn=slow.id, how="slow_consumer")
                    if slow.conn.transport is not None:
                        slow.conn.transport.abort()


def _listings(table: SymbolTable, name: str, protocol: type[VenueProtocol], cfg: SimulatorConfig) -> list[Listing]:
    """The venue's symbols: a generated universe of ``cfg.universe[name]``, or ``cfg.symbols``."""
    if name in cfg.universe:
        from workers.exchanges import exchange_class

        defaults = exchange_class(name).default_symbols
        shipped = [*defaults, *(s for s in table.known(name) if s not in defaults)]
        return generate(name, protocol.separator, protocol.quotes, cfg.universe[name], cfg.seed,
                        [_listing(table, name, protocol, s) for s in shipped])
    return [_listing(table, name, protocol, s) for s in cfg.symbols.get(name, ())]


def _listing(table: SymbolTable, name: str, protocol: type[VenueProtocol], symbol: str) -> Listing:
    pair = table.lookup(name, symbol)
    if pair is not None:
        return Listing(check_symbol(symbol), pair.base, pair.quote)
    if protocol.separator and protocol.separator in symbol:
        base, _, quote = symbol.partition(protocol.separator)
    else:  # a symbol no table knows: BTC-like three-letter base, the rest the quote
        base, quote = symbol[:3], symbol[3:] or "USD"
    return Listing(check_symbol(symbol), base, quote)




def _response(status: int, body: str, headers: dict[str, str] | None = None) -> Response:
    data = body.encode()
    return Response(status, HTTPStatus(status).phrase, Headers([
        ("Content-Type", "application/json;charset=UTF-8"), ("Connection", "close"),
        ("Content-Length", str(len(data))), *(headers or {}).items()]), data)


class SimulatorThread:
    """Run a simulator on its own event loop in a background thread (tests, bench)."""

    def __init__(self, cfg: SimulatorConfig):
        self.sim = Simulator(cfg)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="simulator", daemon=True)
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self.sim.start(), self._loop).result(10)

    def urls(self) -> dict[str, str]:
        """Each venue's WebSocket URL on this simulator."""
        return {name: m.venue.ws_url("127.0.0.1", self.port) for name, m in self.sim.markets.items()}

    def rest_urls(self) -> dict[str, str]:
        """Each venue's REST base URL on this simulator (venues whose simulator serves REST)."""
        return {name: url for name, m in self.sim.markets.items()
                if (url := m.venue.rest_url("127.0.0.1", self.port)) is not None}

    def worker_env(self, all_symbols: bool = False) -> dict[str, str]:
        """``K2_<EXCHANGE>_URLS``, ``_REST_URL`` and ``_SYMBOLS`` pointing workers at this
        simulator: its venues, its REST histories (gap backfill) and the symbols it serves
        (``all_symbols``: ``all``, the worker reads them from the venue's metadata)."""
        env = {f"K2_{name.upper()}_URLS": url for name, url in self.urls().items()}
        env.update({f"K2_{name.upper()}_REST_URL": url for name, url in self.rest_urls().items()})
        env.update({f"K2_{name.upper()}_SYMBOLS": "all" if all_symbols else ",".join(market.tape.symbols)
                    for name, market in self.sim.markets.items()})
        return env

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` on the simulator's loop and return its result."""

        async def invoke() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(invoke(), self._loop).result(10)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.sim.stop(), self._loop).result(15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def read_record(path: str | Path, skip: tuple[str, ...] = ()) -> list[dict]:
    """The simulator's record as a list of events (tolerates a half-written last line),
    read line by line, without the events named in ``skip``.

    A full-market run's record holds a ``published`` line per trade the market made (two
    gigabytes in 30 minutes): as dicts they would take about 1.2 KB each, some 14 GB. A
    reader that needs other events skips those lines by their prefix, unparsed."""
    # How the Recorder begins every line (write() and the per-trade lines alike), "}" cut.
    prefixes = tuple(json.dumps({"ev": name}, separators=(",", ":"))[:-1] for name in skip)
    events = []
    with open(path, encoding="utf-8") as record:
        for line in record:
            if prefixes and line.startswith(prefixes):
                continue
            try:
                event = json.loads(line)
            except ValueError:
                break
            if event.get("ev") not in skip:
                events.append(event)
    return events
