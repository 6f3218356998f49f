"""WebSocket connection lifecycle, kept apart from parsing (websocket-client based).

One thread multiplexes a worker's connections with ``select``:

* **connect** with endpoint failover: each failed attempt moves to the next URL;
  retries wait ``min(cap, base * 2**(n-1))`` scaled by a random jitter in [0.5, 1]
  (the first retry after a working connection drops is immediate).
* **rotation, make-before-break**: after ``connection_lifetime_s`` (below Binance's
  24 h cut), or at once on ``serverShutdown``, a successor connection is opened while
  the old one keeps reading. Once the successor delivers data the old one is kept for
  ``rotation_overlap_s`` more and then closed: trades in the overlap arrive twice
  (same message_id, deduplicated downstream), none fall in a gap.
* **data watchdog**: a connection that delivers neither a trade nor a heartbeat for
  ``watchdog_s`` is replaced, even if the socket (and its pings) look healthy.
* **keepalive per exchange**: server ping frames are answered with a pong echoing the
  payload (websocket-client does that when reading), and exchanges with an
  application ping (Kraken) get one every ``K2_WORKERS_<EXCHANGE>_PING_INTERVAL_S``.
* **frame size limit**: a frame whose header announces more than ``max_frame_bytes``
  (or a fragmented message growing past it) is not read: ``on_oversize`` dead-letters
  what arrived of it, and the connection is replaced, since the stream cannot be
  resynchronised without reading the payload (a hostile length may never end).

The frame handler (parse + produce) is injected, so this module never looks inside
a frame beyond the :class:`~workers.base.Control` kind the handler returns.
"""

from __future__ import annotations

import random
import select
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count
from typing import Protocol

import websocket
from websocket import ABNF
from websocket._abnf import continuous_frame, frame_buffer

from k2.errors import K2Error
from k2.log import EventLog
from workers.backoff import Backoff
from workers.base import Control, Exchange
from workers.settings import WorkerSettings
from workers.stats import WorkerStats

READ_TIMEOUT_S = 1.0  # how long to wait for the rest of a frame already started
# A turn reads until either bound, then serves producer callbacks and timers again. The
# trades bound matters for venues that batch many trades per frame (Bybit, OKX): counted
# in frames only, a turn could queue tens of thousands of records (2,000 frames of many
# trades each) before the producer's acknowledgements were served, and each waits in
# memory until then.
MAX_FRAMES_PER_TURN = 2000
MAX_TRADES_PER_TURN = 2000
RECV_CHUNK = 256 * 1024
# A socket read at least this large marks a busy connection: 64 KiB in one read is about
# 3,000 trades a second at a 100 ms read interval, and the kernel's receive buffer (128 KiB
# at first on Linux TCP) can hand over that much in one read, even where it cannot hand
# over a whole RECV_CHUNK.
BUSY_READ_BYTES = 64 * 1024


class BufferedReceive:
    """Large socket reads served to websocket-client in the small pieces it asks for.

    websocket-client reads a frame header, length and payload with separate ``recv``
    calls; reading 256 KiB at a time and slicing cuts the syscalls per frame from ~3 to
    a fraction of one, which matters at tens of thousands of frames per second.
    """

    def __init__(self, ws: websocket.WebSocket):
        self._raw_recv = ws._recv  # websocket-client's socket read (timeouts, close detection)
        self._buf = b""
        self._pos = 0
        self.max_frame_bytes: float = float("inf")  # set by limit_frames
        # The last socket read was large: the connection is busy and the socket likely
        # holds more, so the worker reads again without pausing (ShardSet.run).
        self.more_waiting = False

    def recv(self, size: int) -> bytes:
        if self._pos >= len(self._buf):
            self._fill()
        start = self._pos
        self._pos = start + size
        return self._buf[start : self._pos]

    def fill(self) -> None:
        """Read what the socket holds (up to a chunk) into the empty buffer; blocks like
        websocket-client's own read when nothing is there."""
        if self._pos >= len(self._buf):
            self._fill()

    def _fill(self) -> None:
        self._buf = self._raw_recv(RECV_CHUNK)
        self._pos = 0
        self.more_waiting = len(self._buf) >= BUSY_READ_BYTES

    def buffered(self) -> int:
        return max(0, len(self._buf) - self._pos)

    def peek(self, size: int) -> bytes:
        """Up to ``size`` buffered bytes, without consuming them."""
        return self._buf[self._pos : self._pos + size]

    def next_data_frame(self) -> bytes | None:
        """Fast path: the payload of a complete, final, unmasked text/binary frame at the
        head of the buffer, or None when anything else is there (control frame,
        fragment, partial frame): websocket-client then handles it the general way.
        Only valid while websocket-client holds no half-read frame (see Link.fast_ok)."""
        buf, pos = self._buf, self._pos
        end_of_buf = len(buf)
        if end_of_buf - pos < 2 or buf[pos] not in (0x81, 0x82):  # FIN + text/binary, no RSV bits
            return None
        size = buf[pos + 1]
        if size < 126:  # also excludes the mask bit (0x80), which servers never set
            start = pos + 2
        elif size == 126:
            if end_of_buf - pos < 4:
                return None
            size, start = int.from_bytes(buf[pos + 2 : pos + 4], "big"), pos + 4
        elif size == 127:
            if end_of_buf - pos < 10:
                return None
            size, start = int.from_bytes(buf[pos + 2 : pos + 10], "big"), pos + 10
        else:
            return None
        end = start + size
        if end > end_of_buf or size > self.max_frame_bytes:  # websocket-client's path refuses it
            return None
        self._pos = end
        return buf[start:end]


@dataclass(eq=False)
class Link:
    """One open WebSocket and what it has delivered."""

    id: int
    endpoint: str
    url: str
    ws: websocket.WebSocket
    reader: BufferedReceive
    opened_at: float
    role: str  # active | successor | retiring
    last_data_at: float | None = None
    trades: int = 0
    retire_at: float | None = None
    next_ping_at: float = float("inf")
    closed: bool = False
    ping_ids: count = field(default_factory=lambda: count(1))

    def fast_ok(self) -> bool:
        """No frame is half-read inside websocket-client, so the fast path may take the next."""
        fb = self.ws.frame_buffer
        return fb.header is None and not fb.recv_buffer and self.ws.cont_frame.cont_data is None

    def has_buffered(self) -> bool:
        if self.reader.buffered():
            return True
        sock = self.ws.sock
        return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0

    def fileno(self) -> int:
        return self.ws.sock.fileno()

    def quiet_for(self, now: float) -> float:
        return now - (self.last_data_at if self.last_data_at is not None else self.opened_at)


class LinkClosed(K2Error):
    """The peer closed the connection or the socket failed."""


class FrameTooLarge(K2Error, websocket.WebSocketProtocolException):
    """A frame (or fragmented message) larger than the limit; its payload was not read."""

    def __init__(self, length: int, limit: int, received: bytes = b""):
        super().__init__(f"frame of {length} bytes exceeds the limit of {limit}")
        self.length = length
        self.received = received  # the part of the message already read (fragments)


class _LimitedFrames(frame_buffer):
    """websocket-client's frame reader, refusing a frame by its header, before reading
    (and allocating) a payload of the announced length."""

    def __init__(self, recv: Callable[[int], bytes], max_bytes: int):
        super().__init__(recv, skip_utf8_validation=True)
        self.max_bytes = max_bytes

    def recv_length(self) -> None:
        super().recv_length()
        if self.length is not None and self.length > self.max_bytes:
            raise FrameTooLarge(self.length, self.max_bytes)


class _LimitedMessages(continuous_frame):
    """websocket-client's reassembly of fragmented messages, refusing one past the limit."""

    def __init__(self, max_bytes: int):
        super().__init__(fire_cont_frame=False, skip_utf8_validation=True)
        self.max_bytes = max_bytes

    def add(self, frame: ABNF) -> None:
        so_far = self.cont_data[1] if self.cont_data else b""
        if len(so_far) + len(frame.data) > self.max_bytes:
            self.cont_data, self.recving_frames = None, None
            raise FrameTooLarge(len(so_far) + len(frame.data), self.max_bytes, so_far)
        super().add(frame)


def limit_frames(link: Link, max_bytes: int) -> None:
    """Enforce ``max_bytes`` on everything ``link`` reads from now on (call before reading)."""
    link.reader.max_frame_bytes = max_bytes
    link.ws.frame_buffer = _LimitedFrames(link.reader.recv, max_bytes)
    link.ws.cont_frame = _LimitedMessages(max_bytes)


def open_link(
    link_id: int, endpoint: str, url: str, role: str, timeout_s: float, now: float
) -> Link:
    """Connect (TCP + TLS + WebSocket handshake) and wrap the socket for buffered reads."""
    ws = websocket.create_connection(
        url, timeout=timeout_s, skip_utf8_validation=True, enable_multithread=False
    )
    ws.settimeout(READ_TIMEOUT_S)
    reader = BufferedReceive(ws)
    ws.frame_buffer.recv = reader.recv
    return Link(link_id, endpoint, url, ws, reader, opened_at=now, role=role)


FrameHandler = Callable[[bytes, Link], tuple[int, Control | None]]
Connector = Callable[[int, str, str, str, float, float], Link]
OversizeHandler = Callable[[Link, int, bytes], None]  # (link, announced length, bytes received of it)


class LinkObserver(Protocol):
    """Told which symbols a link (un)subscribes, with how many requests (each answered by
    an ack), and when it closes (workers.loss_window; the shard set sends the requests)."""

    def subscribing(self, link: Link, symbols: list[str], requests: int) -> None: ...

    def unsubscribing(self, link: Link, symbols: list[str], requests: int) -> None: ...

    def closed(self, link: Link, reason: str) -> None: ...


class ConnectionManager:
    def __init__(
        self,
        exchange: Exchange,
        settings: WorkerSettings,
        handle_frame: FrameHandler,
        stats: WorkerStats,
        log: EventLog,
        *,
        connector: Connector = open_link,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        on_oversize: OversizeHandler | None = None,
        connect_gate: Callable[[float], float] | None = None,
        observer: LinkObserver | None = None,
    ):
        self.exchange = exchange
        self.settings = settings
        self.endpoints = settings.urls(exchange.name)
        # None for venues without an application ping: then none is ever scheduled.
        self.ping_interval_s = settings.ping_interval(exchange.name)
        self.handle_frame = handle_frame
        self.stats = stats
        self.log = log
        self.connector = connector
        self.clock = clock
        self._backoff = Backoff(settings.backoff_base_s, settings.backoff_cap_s, 0.5, rng or random.Random())
        self.on_oversize = on_oversize
        # Seconds to wait before a connection may be opened (0: now, and counted): the
        # venue's per-IP connection rate, shared by the shards of a worker.
        self.connect_gate = connect_gate
        self.observer = observer
        self.links: list[Link] = []
        self._ids = count(1)
        self._endpoint_index = 0
        self._failures = 0  # consecutive failed connects (drives the backoff)
        self._next_connect_at = 0.0
        self._successor_reason = ""

    # public ------------------------------------------------------------------------

    def run(self, should_stop: Callable[[], bool], after_turn: Callable[[], None]) -> None:
        """Keep the stream flowing until ``should_stop()``; ``after_turn`` runs every turn."""
        while not should_stop():
            self.turn()
            after_turn()

    def turn(self, max_wait_s: float = 0.05) -> None:
        """One scheduling round: timers, connects, then read what is ready."""
        now = self.clock()
        self._maintain(now)
        links = [link for link in self.links if not link.closed]
        if not links:
            wait = max(0.0, min(max_wait_s, self._next_connect_at - now))
            if wait:
                time.sleep(wait)
            return
        ready = [link for link in links if link.has_buffered()]
        if not ready:
            try:
                readable, _, _ = select.select(links, [], [], max_wait_s)
            except (OSError, ValueError, AttributeError):  # a socket closed under us: find it on read
                readable = links
            ready = readable
        for link in ready:
            self._read(link)

    # for a shard set (workers.shards), which runs several managers in one select loop

    def maintain(self, now: float) -> None:
        """Timers and connects of one turn, without reading."""
        self._maintain(now)

    def read(self, link: Link) -> None:
        """Read what ``link`` (one of :attr:`links`, ready per select) holds."""
        self._read(link)

    def fail(self, link: Link, reason: str, detail: str) -> None:
        """``link`` failed outside the manager (a send): replace it as if it dropped."""
        self._lost(link, reason, detail)

    def close_all(self, reason: str = "shutdown") -> None:
        for link in list(self.links):
            self._close(link, reason, count_reconnect=False)

    def active(self) -> Link | None:
        return next((link for link in self.links if link.role == "active" and not link.closed), None)

    # reading -----------------------------------------------------------------------

    def _read(self, link: Link) -> None:
        """Read what ``link`` has ready: whole data frames straight from the buffer, the
        rest (control frames, fragments, partial frames) through websocket-client."""
        reader = link.reader
        trades = 0
        if not reader.buffered() and link.fast_ok():
            # Select said the socket has data: read it here, so that the frames it holds
            # take the fast path below, not websocket-client's (a trickle of single frames
            # would otherwise all go the slow way).
            try:
                reader.fill()
            except websocket.WebSocketTimeoutException:
                return
            except (websocket.WebSocketException, OSError) as exc:
                self._lost(link, "connection_error", f"{type(exc).__name__}: {exc}")
                return
        for turn in range(MAX_FRAMES_PER_TURN):
            if trades >= MAX_TRADES_PER_TURN:
                return  # select is skipped next turn while the buffer holds frames
            if link.fast_ok():
                payload = reader.next_data_frame()
                if payload is not None:
                    trades += self._on_data(link, payload)
                    if link.closed:
                        return
                    continue
            if turn and not link.has_buffered():
                return  # drained; the socket is only read again when select says so
            try:
                opcode, frame = link.ws.recv_data_frame(control_frame=True)
            except websocket.WebSocketTimeoutException:
                return  # a frame is half-read; websocket-client resumes it next turn
            except FrameTooLarge as exc:
                self._oversize(link, exc)
                return
            except (websocket.WebSocketException, OSError) as exc:
                self._lost(link, "connection_error", f"{type(exc).__name__}: {exc}")
                return
            if opcode == ABNF.OPCODE_TEXT or opcode == ABNF.OPCODE_BINARY:
                trades += self._on_data(link, frame.data)
            elif opcode == ABNF.OPCODE_CLOSE:
                code, reason = _close_status(frame.data)
                self._lost(link, "closed_by_server", f"close code {code} {reason}".strip())
                return
            # ping/pong: already answered by websocket-client; nothing else to do
            if link.closed:
                return

    def _oversize(self, link: Link, exc: FrameTooLarge) -> None:
        limit = self.settings.max_frame_bytes
        received = exc.received or link.reader.peek(limit)
        if self.on_oversize is not None:
            self.on_oversize(link, exc.length, received[:limit])
        else:
            self.stats.errors["frame_too_large"] += 1
        self.log.error("frame_too_large", link=link.id, endpoint=link.endpoint, length=exc.length, limit=limit,
                       action="replacing the connection; raise K2_WORKERS_MAX_FRAME_BYTES if the exchange "
                              "really sends such frames")
        self._lost(link, "frame_too_large", str(exc))
        # Counted as a failed connection, so a peer that keeps doing it meets a growing backoff.
        self._failures += 1
        self._next_connect_at = self.clock() + self.backoff_delay(self._failures)

    def _on_data(self, link: Link, data: bytes) -> int:
        """Handle one data frame; returns how many trades it held."""
        trades, control = self.handle_frame(data, link)
        now = self.clock()
        if trades:
            link.trades += trades
            link.last_data_at = now
            self.stats.last_data_at = time.time()
        if control is not None:
            self._on_control(link, control, now)
        return trades

    def _on_control(self, link: Link, control: Control, now: float) -> None:
        kind = control.kind
        if kind == "heartbeat":
            link.last_data_at = now
            self.stats.last_data_at = time.time()
        elif kind == "server_shutdown":
            self.log.warning("server_shutdown", link=link.id, endpoint=link.endpoint, detail=control.detail)
            if link.role == "active":
                self._want_successor("server_shutdown", now)
        elif kind in ("subscribe_error", "exchange_error"):
            self.stats.errors[kind] += 1
            self.log.error(kind, link=link.id, endpoint=link.endpoint, detail=control.detail,
                           action="check the symbol settings (K2_*_SYMBOLS)")
        elif kind == "status":
            level = "info" if control.detail == "online" else "warning"
            self.log.event(level, "exchange_status", link=link.id, system=control.detail)
        elif kind == "ack":
            self.log.info("subscribed", link=link.id, detail=control.detail)

    # timers ------------------------------------------------------------------------

    def _maintain(self, now: float) -> None:
        s = self.settings
        active = self.active()
        successor = next((k for k in self.links if k.role == "successor" and not k.closed), None)

        if active is None and successor is not None:
            self._promote(successor, now, overlap=False)
            active, successor = successor, None
        if active is None:
            if now >= self._next_connect_at:
                self._connect("active", now)
            return

        if successor is None and not self._successor_reason and now - active.opened_at >= s.connection_lifetime_s:
            self._want_successor("rotation", now)
        if successor is None and self._successor_reason and now >= self._next_connect_at:
            self._connect("successor", now)
        if successor is not None and successor.last_data_at is not None:
            self._promote(successor, now, overlap=True)

        for link in list(self.links):
            if link.closed:
                continue
            if link.role == "retiring" and link.retire_at is not None and now >= link.retire_at:
                self._close(link, "rotated", count_reconnect=False)
            elif link.quiet_for(now) > s.watchdog_s:
                self._lost(link, "stall", f"no trade or heartbeat for {link.quiet_for(now):.1f}s")
            elif now >= link.next_ping_at:
                self._ping(link, now)
        self.links = [link for link in self.links if not link.closed]

    def _want_successor(self, reason: str, now: float) -> None:
        if not any(k.role == "successor" and not k.closed for k in self.links):
            self._successor_reason = reason
            self._next_connect_at = min(self._next_connect_at, now)

    def _promote(self, successor: Link, now: float, overlap: bool) -> None:
        for link in self.links:
            if link.role == "active" and not link.closed:
                link.role = "retiring"
                link.retire_at = now + (self.settings.rotation_overlap_s if overlap else 0.0)
        successor.role = "active"
        reason = self._successor_reason or "replaced"
        self._successor_reason = ""
        self.stats.reconnects[reason] += 1
        self.log.info("connection_promoted", link=successor.id, endpoint=successor.endpoint,
                      reason=reason, overlap_s=self.settings.rotation_overlap_s if overlap else 0.0)

    def _ping(self, link: Link, now: float) -> None:
        message = self.exchange.ping_message(next(link.ping_ids))
        if message is None or self.ping_interval_s is None:
            link.next_ping_at = float("inf")
            return
        link.next_ping_at = now + self.ping_interval_s
        try:
            link.ws.send(message)
        except (websocket.WebSocketException, OSError) as exc:
            self._lost(link, "connection_error", f"ping failed: {exc}")

    # connecting and closing --------------------------------------------------------

    def _connect(self, role: str, now: float) -> None:
        wait = self.connect_gate(now) if self.connect_gate is not None else 0.0
        if wait > 0:  # over the venue's connection rate: try again when it allows
            self._next_connect_at = now + wait
            return
        endpoint = self.endpoints[self._endpoint_index % len(self.endpoints)]
        url = self.exchange.stream_url(endpoint)
        link_id = next(self._ids)
        try:
            link = self.connector(link_id, endpoint, url, role, self.settings.connect_timeout_s, now)
            limit_frames(link, self.settings.max_frame_bytes)
            for message in self.exchange.subscribe_messages():
                link.ws.send(message)
        except (websocket.WebSocketException, OSError) as exc:  # incl. TLS errors and timeouts
            self._failures += 1
            delay = self.backoff_delay(self._failures)
            self._next_connect_at = self.clock() + delay
            self._endpoint_index += 1  # failover: next attempt uses the next URL
            self.stats.errors["connect_failed"] += 1
            self.log.warning("connect_failed", endpoint=endpoint, role=role, attempt=self._failures,
                             error=f"{type(exc).__name__}: {exc}", retry_in_s=round(delay, 3),
                             next_endpoint=self.endpoints[self._endpoint_index % len(self.endpoints)])
            return
        if role == "active":
            self._successor_reason = ""  # a fresh active connection replaces any planned one
        if self.ping_interval_s is not None and self.exchange.ping_message(0) is not None:
            link.next_ping_at = now + self.ping_interval_s
        self.links.append(link)
        self.stats.connected = True
        self.log.info("connected", link=link_id, endpoint=endpoint, role=role, url=url)

    def backoff_delay(self, failures: int) -> float:
        """Delay before the next attempt after ``failures`` consecutive failures."""
        return self._backoff.delay(failures) if failures > 0 else 0.0

    def _lost(self, link: Link, reason: str, detail: str) -> None:
        """A link failed or went quiet: close it and arrange what replaces it."""
        was = link.role
        has_successor = any(k.role == "successor" and not k.closed for k in self.links)
        # A live successor takes over and is counted when promoted; otherwise count here.
        self._close(link, reason, count_reconnect=was == "active" and not has_successor, detail=detail)
        if link.last_data_at is not None:
            self._failures = 0  # it worked: the next attempt is immediate
        if was == "active":
            self._next_connect_at = self.clock() + self.backoff_delay(self._failures)
            if self._failures or reason == "stall":
                self._endpoint_index += 1
        elif was == "successor":
            self._failures += 1
            self._next_connect_at = self.clock() + self.backoff_delay(self._failures)

    def _close(self, link: Link, reason: str, *, count_reconnect: bool, detail: str = "") -> None:
        if link.closed:
            return
        link.closed = True
        if self.observer is not None:
            self.observer.closed(link, reason)
        if count_reconnect:
            self.stats.reconnects[reason] += 1
        try:
            link.ws.send_close()
        except (websocket.WebSocketException, OSError):
            pass
        try:
            link.ws.shutdown()
        except (websocket.WebSocketException, OSError):
            pass
        self.stats.connected = any(not k.closed for k in self.links)
        level = "info" if reason in ("rotated", "shutdown") else "warning"
        self.log.event(level, "connection_closed", link=link.id, endpoint=link.endpoint, role=link.role,
                       reason=reason, detail=detail, trades=link.trades,
                       age_s=round(self.clock() - link.opened_at, 3))


def _close_status(payload: bytes) -> tuple[int | None, str]:
    if len(payload) >= 2:
        return int.from_bytes(payload[:2], "big"), payload[2:].decode("utf-8", "replace")
    return None, ""
