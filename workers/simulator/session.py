"""What every simulated connection shares: writing frames, faults, the record.

A venue's protocol (``workers/simulator/venues/<name>.py``) subclasses :class:`Session`
with what it says on the wire; this module knows no venue.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import deque
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

from workers.simulator.market import SimTrade
from workers.simulator.protocols import BAD_FRAME_KINDS

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection

    from workers.simulator.server import Simulator


class Recorder:
    """The record: one JSON object per line, written through a large buffer.

    The two per-trade events (``published``, ``trade``) are the bulk of it at full-market
    rates (tens of thousands a second), so they are written as f-strings rather than with
    ``json.dumps``: every text field in them is made by the simulator from characters
    that need no escaping (digits, ``.``, ``-``, ``:``, letters; symbols are checked by
    ``universe.check_symbol`` when listed). With ``sent_lines`` off the ``trade`` lines
    are left out and only each symbol's span of ids sent (first, last) is kept and
    written at the end (``sent_span``): enough for a no-loss check when ids are
    consecutive, at a fraction of the cost.
    """

    BUFFER = 1 << 20

    def __init__(self, path: str | None, sent_lines: bool = True):
        self._file: IO[str] | None = open(path, "w", buffering=self.BUFFER) if path else None  # noqa: SIM115 - closed in close()
        self.sent_lines = sent_lines
        self.spans: dict[tuple[str, str], list[int]] = {}  # (exchange, symbol) -> [first, last] id sent

    @property
    def active(self) -> bool:
        return self._file is not None

    def write(self, **fields: Any) -> None:
        if self._file is not None:
            self._file.write(json.dumps(fields, separators=(",", ":")) + "\n")

    def published(self, exchange: str, trades: list[SimTrade]) -> None:
        """What the market published (the complete history a client could recover)."""
        if self._file is None:
            return
        self._file.write("".join(
            f'{{"ev":"published","exchange":"{exchange}","symbol":"{t.symbol}","trade_id":"{t.trade_id}",'
            f'"price_wire":"{t.price}","qty_wire":"{t.qty}","taker":"{t.taker}","time_us":{t.ts_us}}}\n'
            for t in trades))

    def trade(self, exchange: str, conn: int, t: SimTrade, price_wire: str, qty_wire: str, time_wire: object,
              unit: str, frame: str) -> None:
        """That ``t`` reached connection ``conn`` in a frame of kind ``frame``."""
        if self._file is None:
            return
        if not self.sent_lines:
            span = self.spans.get((exchange, t.symbol))
            if span is None:
                self.spans[(exchange, t.symbol)] = [t.trade_id, t.trade_id]
            elif t.trade_id > span[1]:
                span[1] = t.trade_id
            elif t.trade_id < span[0]:
                span[0] = t.trade_id
            return
        wire_time = time_wire if isinstance(time_wire, int) else f'"{time_wire}"'
        self._file.write(
            f'{{"ev":"trade","exchange":"{exchange}","conn":{conn},"symbol":"{t.symbol}","trade_id":"{t.trade_id}",'
            f'"price_wire":"{price_wire}","qty_wire":"{qty_wire}","taker":"{t.taker}","time_wire":{wire_time},'
            f'"time_unit":"{unit}","frame":"{frame}"}}\n')

    def write_spans(self) -> None:
        for (exchange, symbol), (first, last) in sorted(self.spans.items()):
            self.write(ev="sent_span", exchange=exchange, symbol=symbol, first_id=first, last_id=last)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self.write_spans()
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


class RateWindow:
    """At most ``limit`` events in any ``window_s`` seconds (a sliding window, as venues
    state their limits: "5 messages a second", "480 requests an hour")."""

    def __init__(self, limit: int, window_s: float):
        self.limit, self.window_s = limit, window_s
        self.times: deque[float] = deque()

    def over(self, now: float | None = None) -> bool:
        """Count one event; True when it is past the limit."""
        now = time.monotonic() if now is None else now
        times = self.times
        while times and now - times[0] >= self.window_s:
            times.popleft()
        times.append(now)
        return len(times) > self.limit


class Session:
    """One client connection of one exchange; a venue's protocol subclasses it."""

    exchange = ""

    def __init__(self, sim: Simulator, conn: ServerConnection, conn_id: int,
                 query: Mapping[str, list[str]] | None = None):
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
        self._pending: list[bytes] | None = None  # frames of the tick being offered (offer_batched)

    # writing -----------------------------------------------------------------------

    def write(self, text: str) -> bool:
        """Write one text frame straight to the transport (the hot path when benchmarking),
        or, inside :meth:`offer_batched`, add it to the tick's one write."""
        transport = self.conn.transport
        if self.closed or transport is None or transport.is_closing():
            return False
        if self._pending is not None:
            self._pending.append(ws_text_frame(text.encode()))
            return True
        return self._transmit(transport, ws_text_frame(text.encode()))

    def _transmit(self, transport: Any, data: bytes) -> bool:
        try:
            transport.write(data)
        except (RuntimeError, ConnectionError):
            # The client half-closed (write_eof) or reset between the check and the write:
            # this session is over; the market goes on for the others.
            self.closed = True
            return False
        return True

    def offer_batched(self, batch: list[SimTrade]) -> None:
        """:meth:`offer` one market tick with every frame it makes in one transport write:
        a socket write per frame cost as much as making the frame at full-market rates.
        The frames and their order are the same."""
        self._pending = []
        try:
            self.offer(batch)
        finally:
            pending, self._pending = self._pending, None
        transport = self.conn.transport
        if pending and not self.closed and transport is not None and not transport.is_closing():
            self._transmit(transport, b"".join(pending))

    def backlog(self) -> int:
        transport = self.conn.transport
        return 0 if transport is None or transport.is_closing() else transport.get_write_buffer_size()

    def stalled(self) -> bool:
        return time.monotonic() < self.stalled_until

    def maybe_bad_frame(self, t: SimTrade) -> None:
        if self.cfg.malformed_rate and self.rng.random() < self.cfg.malformed_rate:
            self.send_bad(self.rng.choice(BAD_FRAME_KINDS), t)

    def drop_rate(self) -> float:
        """Chance per live trade that this connection silently skips it (``drop_rates``)."""
        return self.cfg.drop_rates.get(self.exchange, 0.0)

    def dropped(self, t: SimTrade, rate: float) -> bool:
        """Leave ``t`` out of the stream (and record it) when ``Simulator.drop`` asked for it
        or by chance ``rate``: a gap inside one connection, as when a venue's stream skips a
        trade. Callers test ``self.drop_next or rate`` first, which keeps the hot path cheap."""
        if not (self.drop_next or (rate and self.rng.random() < rate)):
            return False
        self.drop_next = max(0, self.drop_next - 1)
        self.rec.write(ev="dropped", exchange=self.exchange, conn=self.id, symbol=t.symbol,
                       trade_id=str(t.trade_id))
        return True

    def send_bad(self, kind: str, t: SimTrade) -> None:
        raw = self.bad_frame(kind, t)
        if self.write(raw):
            self.rec.write(ev="bad_frame", exchange=self.exchange, conn=self.id, kind=kind, raw=raw)

    # to implement --------------------------------------------------------------------

    def bad_frame(self, kind: str, t: SimTrade) -> str:
        raise NotImplementedError

    def trade_frame(self, t: SimTrade) -> str:
        """The frame carrying ``t`` alone (venues that send one frame per trade)."""
        raise NotImplementedError

    def wire_time(self, t: SimTrade) -> tuple[object, str]:
        """``t``'s time as its frame writes it, and the unit (``us``, ``ms``, ``rfc3339``)."""
        raise NotImplementedError

    def offer(self, batch: list[SimTrade]) -> None:
        """Send the subscribed trades of one market tick, one :meth:`trade_frame` each, with
        the configured drops, bad frames and duplicates; venues that batch override it."""
        if self.stalled() or self.closed:
            return
        subscribed, cfg, rng = self.subscribed, self.cfg, self.rng
        drop_rate = self.drop_rate()
        for t in batch:
            if t.symbol not in subscribed:
                continue
            if (self.drop_next or drop_rate) and self.dropped(t, drop_rate):
                continue
            self.maybe_bad_frame(t)
            frame = self.trade_frame(t)
            copies = 2 if cfg.duplicate_rate and rng.random() < cfg.duplicate_rate else 1
            for copy in range(copies):
                if not self.write(frame):
                    return
                self.sent(t, "duplicate" if copy else "update")

    def subscribed_by_symbol(self, batch: list[SimTrade]) -> dict[str, list[SimTrade]]:
        """The subscribed trades of one market tick that the stream sends (the configured
        drops left out), grouped by symbol in order: for venues that batch a symbol's trades."""
        by_symbol: dict[str, list[SimTrade]] = {}
        rate = self.drop_rate()
        for t in batch:
            if t.symbol not in self.subscribed:
                continue
            if (self.drop_next or rate) and self.dropped(t, rate):
                continue
            by_symbol.setdefault(t.symbol, []).append(t)
        return by_symbol

    def sent(self, t: SimTrade, frame: str, price_wire: str | None = None, qty_wire: str | None = None,
             time: tuple[object, str] | None = None) -> None:
        """Record that ``t`` reached the client in a frame of kind ``frame`` (update,
        snapshot, duplicate): what tests compare Kafka with. The wire texts default to the
        tape's and :meth:`wire_time`."""
        if not self.rec.active:
            return
        time_wire, unit = time or self.wire_time(t)
        self.rec.trade(self.exchange, self.id, t, t.price if price_wire is None else price_wire,
                       t.qty if qty_wire is None else qty_wire, time_wire, unit, frame)

    async def on_open(self) -> None:
        pass

    async def on_message(self, message: str) -> None:
        pass

    async def refuse(self, limit: str, detail: str, code: int = 1008, reason: str | None = None) -> None:
        """Close this connection for going past the venue's ``limit`` (the venue's close),
        recorded as a ``limit`` event and counted per venue (``Simulator.limit_violations``)."""
        self.sim.over_limit(self.exchange, self.id, limit, detail)
        await self.close(code, reason or detail)

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
