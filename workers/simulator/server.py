"""The exchange simulator: a local WebSocket server speaking Binance and Kraken v2.

One server on 127.0.0.1 serves both protocols by path, like the real hosts do:

* ``/stream?streams=btcusdt@trade/...[&timeUnit=MICROSECOND]``: Binance combined
  streams (SUBSCRIBE/UNSUBSCRIBE/LIST_SUBSCRIPTIONS answered, ping frames every 20 s
  with a 60 s pong deadline, ``serverShutdown`` before planned closes);
* ``/v2``: Kraken v2 (status on connect, one ack per symbol with ``success:false`` for
  unknown or v1 names, snapshot of the last 50 trades on subscribe, batched trades,
  heartbeats every second, application ping/pong).

Plain HTTP GETs on the same port answer the REST trade histories from the same tape,
for gap backfill: Binance ``/api/v3/historicalTrades`` and ``/api/v3/trades``, Kraken
``/0/public/Trades`` (see :mod:`workers.simulator.rest`).

Faults are configurable per connection (lifetime cut-off, serverShutdown, abrupt
disconnect, silent stall, trades silently left out of the stream) and per frame
(malformed frames, duplicate trades), all from a seed; REST can answer as rate-limited
(Binance 429, Kraken ``EAPI:Rate limit exceeded``) and serves only ``rest_history``
trades per symbol.
The record (JSON lines) lists every trade the market published (``published``: the
ground truth of a complete history) and exactly what each connection was sent:
every trade with its wire text, every trade left out (``dropped``), every bad frame,
every REST answer, every connection event, so tests compare Kafka against it without
using worker code.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import IO, Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from workers.simulator import protocols as p
from workers.simulator import rest
from workers.simulator.market import ARCHIVE_DEPTH, SimTrade, Tape
from workers.symbols import SymbolTable

WRITE_HIGH_WATER = 1 << 20  # bytes buffered per connection before the market waits


@dataclass
class SimulatorConfig:
    host: str = "127.0.0.1"
    port: int = 0  # 0: pick a free port (printed / available as .port)
    binance_symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    kraken_symbols: tuple[str, ...] = ("BTC/USD", "ETH/USD")
    rate: float = 50.0  # trades per second per exchange; 0 = as fast as the clients read
    kraken_batch: int = 5  # most trades in one Kraken message
    malformed_rate: float = 0.0  # chance per trade frame of an extra malformed frame
    duplicate_rate: float = 0.0  # chance per trade frame of sending it twice
    drop_rate: float = 0.0  # Binance: chance per trade that a connection silently skips it
    kraken_drop_rate: float = 0.0  # Kraken: the same, for live updates (never the snapshot)
    rest_history: int = ARCHIVE_DEPTH  # REST: trades per symbol kept (historicalTrades, Trades); older: not served
    exponent_rate: float = 0.1  # chance a Kraken qty is written in exponent form
    lifetime_s: float | None = None  # close every connection after this long (Binance: 24 h)
    shutdown_after_s: float | None = None  # Binance: serverShutdown after this long ...
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


class Recorder:
    def __init__(self, path: str | None):
        self._file: IO[str] | None = open(path, "w") if path else None  # noqa: SIM115 - closed in close()

    def write(self, **fields: Any) -> None:
        if self._file is not None:
            self._file.write(json.dumps(fields, separators=(",", ":")) + "\n")

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def ws_text_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented server text frame (RFC 6455 §5.2)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + payload
    return b"\x81\x7f" + n.to_bytes(8, "big") + payload


def now_us() -> int:
    return time.time_ns() // 1000


class Session:
    """One client connection of one exchange."""

    exchange = ""

    def __init__(self, sim: Simulator, conn: ServerConnection, conn_id: int):
        self.sim = sim
        self.conn = conn
        self.id = conn_id
        self.cfg = sim.cfg
        self.rec = sim.recorder
        self.rng = random.Random(f"{sim.cfg.seed}:{self.exchange}:{conn_id}")
        self.subscribed: set[str] = set()
        self.stalled_until = 0.0
        self.closed = False
        self.drop_next = 0  # leave this many trades out of the stream (Simulator.drop)

    # writing -----------------------------------------------------------------------

    def write(self, text: str) -> bool:
        """Write one text frame straight to the transport (the hot path when benchmarking)."""
        transport = self.conn.transport
        if self.closed or transport is None or transport.is_closing():
            return False
        try:
            transport.write(ws_text_frame(text.encode()))
        except (RuntimeError, ConnectionError):
            # The client half-closed (write_eof) or reset between the check and the write:
            # this session is over; the market goes on for the others.
            self.closed = True
            return False
        return True

    def backlog(self) -> int:
        transport = self.conn.transport
        return 0 if transport is None or transport.is_closing() else transport.get_write_buffer_size()

    def stalled(self) -> bool:
        return time.monotonic() < self.stalled_until

    def maybe_bad_frame(self, t: SimTrade) -> None:
        if self.cfg.malformed_rate and self.rng.random() < self.cfg.malformed_rate:
            self.send_bad(self.rng.choice(p.BAD_FRAME_KINDS), t)

    def send_bad(self, kind: str, t: SimTrade) -> None:
        raw = self.bad_frame(kind, t)
        if self.write(raw):
            self.rec.write(ev="bad_frame", exchange=self.exchange, conn=self.id, kind=kind, raw=raw)

    # to implement --------------------------------------------------------------------

    def bad_frame(self, kind: str, t: SimTrade) -> str:
        raise NotImplementedError

    def offer(self, batch: list[SimTrade]) -> None:
        raise NotImplementedError

    async def on_open(self) -> None:
        pass

    async def on_message(self, message: str) -> None:
        pass

    async def notify_shutdown(self) -> None:
        """Planned close: exchanges without a notice just close."""
        await self.close(1001, "server shutdown")

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        await self.drain()
        self.closed = True
        self.rec.write(ev="conn_close", exchange=self.exchange, conn=self.id, how="close", code=code, reason=reason)
        self.rec.flush()
        await self.conn.close(code, reason)

    async def abort(self) -> None:
        """Abrupt disconnect: no close frame. Buffered frames are flushed first so every
        frame the record lists really reached the client's socket."""
        if self.closed:
            return
        await self.drain()
        self.closed = True
        self.rec.write(ev="conn_close", exchange=self.exchange, conn=self.id, how="abort")
        self.rec.flush()
        if self.conn.transport is not None:
            self.conn.transport.close()

    async def drain(self) -> None:
        deadline = time.monotonic() + 5.0
        while self.backlog() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)


class BinanceSession(Session):
    exchange = "binance"

    def __init__(self, sim: Simulator, conn: ServerConnection, conn_id: int, query: dict[str, list[str]]):
        super().__init__(sim, conn, conn_id)
        self.microseconds = query.get("timeUnit", ["MILLISECOND"])[0].upper() == "MICROSECOND"
        streams = query.get("streams", [""])[0]
        self.subscribed = self._symbols_of(streams.split("/") if streams else [])

    def _symbols_of(self, streams: list[str]) -> set[str]:
        known = {s.lower(): s for s in self.sim.tapes["binance"].symbols}
        return {known[s[: -len("@trade")]] for s in streams if s.endswith("@trade") and s[: -len("@trade")] in known}

    def bad_frame(self, kind: str, t: SimTrade) -> str:
        return p.binance_bad(kind, t, self.microseconds)

    def offer(self, batch: list[SimTrade]) -> None:
        if self.stalled() or self.closed:
            return
        rec, subscribed, cfg, rng = self.rec, self.subscribed, self.cfg, self.rng
        for t in batch:
            if t.symbol not in subscribed:
                continue
            if self.drop_next or (cfg.drop_rate and rng.random() < cfg.drop_rate):
                # A gap inside one connection, as when the exchange's stream skips a trade.
                self.drop_next = max(0, self.drop_next - 1)
                rec.write(ev="dropped", exchange="binance", conn=self.id, symbol=t.symbol,
                          trade_id=str(t.trade_id))
                continue
            self.maybe_bad_frame(t)
            frame = p.binance_trade(t, self.microseconds)
            if not self.write(frame):
                return
            copies = 2 if cfg.duplicate_rate and rng.random() < cfg.duplicate_rate else 1
            if copies == 2:
                self.write(frame)
            if rec._file is not None:
                T = p.binance_time(t.ts_us, self.microseconds)
                for i in range(copies):
                    rec.write(ev="trade", exchange="binance", conn=self.id, symbol=t.symbol,
                              trade_id=str(t.trade_id), price_wire=t.price, qty_wire=t.qty, taker=t.taker,
                              time_wire=T, time_unit="us" if self.microseconds else "ms",
                              frame="duplicate" if i else "update")

    async def on_message(self, message: str) -> None:
        try:
            req = json.loads(message)
            method, req_id = req["method"], req["id"]
        except (ValueError, KeyError, TypeError):
            self.write(json.dumps({"code": 2, "msg": f"Invalid request: {message[:100]}"}))
            return
        params = req.get("params") or []
        if method == "SUBSCRIBE":
            self.subscribed |= self._symbols_of(params)
            self.write(json.dumps({"result": None, "id": req_id}))
        elif method == "UNSUBSCRIBE":
            self.subscribed -= self._symbols_of(params)
            self.write(json.dumps({"result": None, "id": req_id}))
        elif method == "LIST_SUBSCRIPTIONS":
            self.write(json.dumps({"result": sorted(f"{s.lower()}@trade" for s in self.subscribed), "id": req_id}))
        else:
            self.write(json.dumps({"code": 2, "msg": f"Invalid request: unknown method {method!r}"}))

    async def notify_shutdown(self) -> None:
        if self.write(p.binance_server_shutdown(now_us())):
            self.rec.write(ev="control", exchange="binance", conn=self.id, kind="server_shutdown")
        await asyncio.sleep(self.cfg.shutdown_grace_s)
        await self.close(1001, "server shutdown")


class KrakenSession(Session):
    exchange = "kraken"

    def bad_frame(self, kind: str, t: SimTrade) -> str:
        return p.kraken_bad(kind, t)

    async def on_open(self) -> None:
        self.write(p.kraken_status(self.id))
        self.sim.spawn(self._heartbeats())

    async def _heartbeats(self) -> None:
        while not self.closed:
            await asyncio.sleep(self.cfg.heartbeat_s)
            if self.subscribed and not self.stalled():
                self.write(p.HEARTBEAT)

    async def on_message(self, message: str) -> None:
        ts = now_us()
        try:
            req = json.loads(message)
            method = req["method"]
        except (ValueError, KeyError, TypeError):
            self.write(p.kraken_error("unknown", "Malformed request", None, ts))
            return
        req_id = req.get("req_id")
        if method == "ping":
            self.write(p.kraken_pong(req_id, ts))
        elif method == "subscribe":
            self._subscribe(req.get("params") or {}, req_id, ts)
        else:
            self.write(p.kraken_error(str(method), f"Method not supported: {method}", req_id, ts))

    def _subscribe(self, params: dict, req_id: object, ts: int) -> None:
        if params.get("channel") != "trade":
            self.write(p.kraken_error("subscribe", "Channel not supported", req_id, ts))
            return
        tape = self.sim.tapes["kraken"]
        snapshot = bool(params.get("snapshot", True))
        for symbol in params.get("symbol") or []:
            if symbol not in tape.symbols:
                self.write(p.kraken_error("subscribe", f"Currency pair not supported {symbol}", req_id, ts, symbol))
                continue
            self.write(p.kraken_ack(symbol, req_id, snapshot, ts))
            if snapshot and not self.stalled():
                self._send_trades(list(tape.history[symbol]), snapshot=True)
            self.subscribed.add(symbol)

    def offer(self, batch: list[SimTrade]) -> None:
        if self.stalled() or self.closed:
            return
        by_symbol: dict[str, list[SimTrade]] = {}
        rate, rng = self.cfg.kraken_drop_rate, self.rng
        for t in batch:
            if t.symbol not in self.subscribed:
                continue
            if self.drop_next or (rate and rng.random() < rate):
                # A trade id the v2 stream never sends, as reported in krakenfx/api-go#36.
                self.drop_next = max(0, self.drop_next - 1)
                self.rec.write(ev="dropped", exchange="kraken", conn=self.id, symbol=t.symbol,
                               trade_id=str(t.trade_id))
                continue
            by_symbol.setdefault(t.symbol, []).append(t)
        for trades in by_symbol.values():
            self._send_trades(trades, snapshot=False)

    def _send_trades(self, trades: list[SimTrade], snapshot: bool) -> None:
        cfg, rng, rec = self.cfg, self.rng, self.rec
        size = max(1, cfg.kraken_batch)
        for start in range(0, len(trades), size):
            chunk = trades[start : start + size]
            exponent = [bool(cfg.exponent_rate) and rng.random() < cfg.exponent_rate for _ in chunk]
            if not snapshot:
                self.maybe_bad_frame(chunk[0])
            frame = p.kraken_trades([p.kraken_item(t, e) for t, e in zip(chunk, exponent, strict=True)], snapshot)
            if not self.write(frame):
                return
            copies = 2 if not snapshot and cfg.duplicate_rate and rng.random() < cfg.duplicate_rate else 1
            if copies == 2:
                self.write(frame)
            if rec._file is not None:
                for t, e in zip(chunk, exponent, strict=True):
                    for i in range(copies):
                        rec.write(ev="trade", exchange="kraken", conn=self.id, symbol=t.symbol,
                                  trade_id=str(t.trade_id), price_wire=p.kraken_number(t.price, False),
                                  qty_wire=p.kraken_number(t.qty, e), taker=t.taker,
                                  time_wire=p.rfc3339(t.ts_us), time_unit="rfc3339",
                                  frame="duplicate" if i else ("snapshot" if snapshot else "update"))


@dataclass
class Market:
    exchange: str
    tape: Tape
    sessions: set[Session] = field(default_factory=set)


class Simulator:
    def __init__(self, cfg: SimulatorConfig):
        self.cfg = cfg
        self.recorder = Recorder(cfg.record)
        table = SymbolTable.shipped()
        bases = {
            "binance": {s: _base(table, "binance", s) for s in cfg.binance_symbols},
            "kraken": {s: _base(table, "kraken", s) for s in cfg.kraken_symbols},
        }
        self.tapes = {
            "binance": Tape(list(cfg.binance_symbols), bases["binance"], cfg.seed * 2, 2, pad_to=8,
                            archive_depth=cfg.rest_history),
            "kraken": Tape(list(cfg.kraken_symbols), bases["kraken"], cfg.seed * 2 + 1, 1,
                           archive_depth=cfg.rest_history),
        }
        self.markets = {ex: Market(ex, tape) for ex, tape in self.tapes.items()}
        self.port = cfg.port
        self._server: Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._next_conn = 0
        self.connections_opened = {"binance": 0, "kraken": 0}
        self.rest_throttle = 0  # answer this many REST requests with 429 ...
        self.rest_retry_after_s = 1  # ... and this Retry-After
        self.rest_requests = 0
        self.kraken_pairs = rest.kraken_pair_symbols(list(cfg.kraken_symbols), table.kraken_aliases)

    # lifecycle ---------------------------------------------------------------------

    async def start(self) -> int:
        cfg = self.cfg
        self._server = await serve(
            self._handle, cfg.host, cfg.port, compression=None,
            ping_interval=cfg.ping_interval_s, ping_timeout=cfg.ping_timeout_s, max_size=1 << 20,
            close_timeout=1.0, process_request=self._process_request,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        for market in self.markets.values():
            self.spawn(self._run_market(market))
        self.recorder.write(ev="listening", port=self.port, seed=cfg.seed, rate=cfg.rate)
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
        or ``shutdown`` (Binance: serverShutdown notice first)."""
        victims = self.sessions(exchange)
        for s in victims:
            if how == "abort":
                self.spawn(s.abort())
            elif how == "close":
                self.spawn(s.close(1001, "connection lifetime exceeded"))
            else:
                self.spawn(s.notify_shutdown())
        return len(victims)

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
        """Answer the next ``requests`` REST requests as over the rate limit: Binance 429 with
        ``Retry-After``, Kraken HTTP 200 with ``EAPI:Rate limit exceeded``."""
        self.rest_throttle, self.rest_retry_after_s = requests, retry_after_s

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
        """Plain HTTP GETs under /api/ are Binance REST, under /0/public/ Kraken REST;
        anything else is a WebSocket handshake."""
        url = urllib.parse.urlsplit(request.path)
        if url.path.startswith("/api/"):
            exchange = "binance"
        elif url.path.startswith("/0/public/"):
            exchange = "kraken"
        else:
            return None
        self.rest_requests += 1
        query = urllib.parse.parse_qs(url.query)
        throttled = self.rest_throttle > 0
        if throttled:
            self.rest_throttle -= 1
        if exchange == "kraken":
            reply = rest.kraken_rate_limited() if throttled else rest.kraken_trades(
                url.path, query, self.tapes["kraken"], self.kraken_pairs)
        elif throttled:
            reply = rest.too_many_requests(self.rest_retry_after_s)
        else:
            reply = rest.binance_trades(url.path, query, request.headers, self.tapes["binance"])
        self.recorder.write(
            ev="rest", exchange=exchange, path=url.path, query=url.query, status=reply.status, throttled=throttled,
            count=len(reply.trades), symbol=reply.trades[0].symbol if reply.trades else None,
            first_id=reply.trades[0].trade_id if reply.trades else None,
            last_id=reply.trades[-1].trade_id if reply.trades else None,
        )
        self.recorder.flush()
        body = reply.body.encode()
        headers = Headers([("Content-Type", "application/json;charset=UTF-8"), ("Connection", "close"),
                           ("Content-Length", str(len(body))), *reply.headers.items()])
        return Response(reply.status, HTTPStatus(reply.status).phrase, headers, body)

    def _published(self, exchange: str, trades: list[SimTrade]) -> None:
        """Record what the market published: the complete history a client could recover."""
        rec = self.recorder
        if rec._file is None:
            return
        for t in trades:
            rec.write(ev="published", exchange=exchange, symbol=t.symbol, trade_id=str(t.trade_id),
                      price_wire=t.price, qty_wire=t.qty, taker=t.taker, time_us=t.ts_us)

    async def _handle(self, conn: ServerConnection) -> None:
        url = urllib.parse.urlsplit(conn.request.path)
        query = urllib.parse.parse_qs(url.query)
        self._next_conn += 1
        conn_id = self._next_conn
        if url.path.rstrip("/") in ("/stream", ""):
            session: Session = BinanceSession(self, conn, conn_id, query)
        elif url.path.rstrip("/") == "/v2":
            session = KrakenSession(self, conn, conn_id)
        else:
            await conn.close(1008, f"unknown path {url.path}; use /stream?streams=... or /v2")
            return
        exchange = session.exchange
        self.connections_opened[exchange] += 1
        self.recorder.write(ev="conn_open", exchange=exchange, conn=conn_id, path=conn.request.path)
        await session.on_open()
        market = self.markets[exchange]
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

    async def _run_market(self, market: Market) -> None:
        cfg, loop = self.cfg, asyncio.get_running_loop()
        last, carry = loop.time(), 0.0
        while True:
            if cfg.paused:  # read at each tick, like the rest of the config
                self.recorder.flush()  # what was sent before the pause is on disk for the test
                await asyncio.sleep(cfg.tick_s)
                last = loop.time()  # no backlog of trades when it resumes
                continue
            if cfg.rate > 0:
                await asyncio.sleep(cfg.tick_s)
                now = loop.time()
                carry += (now - last) * cfg.rate
                last = now
                n = int(carry)
                carry -= n
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
                session.offer(batch)
            self.recorder.flush()
            while any(s.backlog() > WRITE_HIGH_WATER for s in market.sessions):
                await asyncio.sleep(0.001)
            if cfg.rate <= 0:
                await asyncio.sleep(0)


def _base(table: SymbolTable, exchange: str, symbol: str) -> str:
    pair = table.lookup(exchange, symbol)
    return pair.base if pair else symbol.split("/")[0][:3]


class SimulatorThread:
    """Run a simulator on its own event loop in a background thread (tests, bench)."""

    def __init__(self, cfg: SimulatorConfig):
        self.sim = Simulator(cfg)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="simulator", daemon=True)
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self.sim.start(), self._loop).result(10)

    def urls(self) -> dict[str, str]:
        return {"binance": f"ws://127.0.0.1:{self.port}", "kraken": f"ws://127.0.0.1:{self.port}/v2"}

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


def read_record(path: str | Path) -> list[dict]:
    """The simulator's record as a list of events (tolerates a half-written last line)."""
    events = []
    for line in Path(path).read_text().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            break
    return events
