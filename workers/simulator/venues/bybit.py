"""Bybit v5 spot for the simulator: its frames (pure builders) and its connection session.

Served at ``/v5/public/spot`` as the real host does. What the session does, after
docs/exchanges/bybit.md:

* nothing on connect; ``{"op":"subscribe","args":["publicTrade.BTCUSDT",...]}`` is answered
  with one ``{success, ret_msg, conn_id, req_id, op}`` per request. A request of more than
  10 topics, a topic past the connection's 21,000 characters of args, or a topic of an
  unknown symbol fails as a whole (``success:false``; the unknown topic is named as
  ``error:handler not found,topic:...``, the text Bybit sends) and subscribes nothing;
* ``{"op":"ping"}`` is answered with ``ret_msg: "pong"``; a connection that neither pings
  nor gets data for :data:`IDLE_CUTOFF_S` is closed (Bybit: 10 minutes);
* trades of one symbol published in one tick go out as one message (up to 1,024 trades),
  ``T`` in ms; each simulated trade is its own match, so ``seq`` is its id;
* no heartbeats and no shutdown notice (Bybit has neither): a planned close just closes;
* ``GET /v5/market/instruments-info?category=spot`` lists the universe (``status``
  ``Trading``, or ``PreLaunch`` for a symbol listed but not trading yet); 500 new
  connections in 5 minutes per IP (Bybit's stated limit), past it HTTP 429.

The frames are f-strings: they are the simulator's hot path when benchmarking.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Collection, Mapping

from workers.exchanges.bybit import (
    IDLE_CUTOFF_S,
    INSTRUMENTS_INFO,
    MAX_ARGS_CHARS_PER_CONNECTION,
    MAX_CONNECTIONS_PER_5_MIN,
    MAX_TOPICS_PER_SUBSCRIBE,
    MAX_TRADES_PER_MESSAGE,
    TOPIC_PREFIX,
    args_chars,
)
from workers.simulator.market import SimTrade
from workers.simulator.protocols import malformed
from workers.simulator.rest import RestReply
from workers.simulator.session import Session, now_us
from workers.simulator.venues import ConnectLimit, VenueProtocol

PATH = "/v5/public/spot"
EVENT_LAG_MS = 5  # the message time ts trails the last fill's T by this much
IDLE_SCAN_S = 30.0  # Bybit checks idle connections about every 30 s


# frames ---------------------------------------------------------------------------


def trade_item(t: SimTrade) -> str:
    side = "Buy" if t.taker == "buy" else "Sell"
    return (
        f'{{"i":"{t.trade_id}","T":{t.ts_us // 1000},"p":"{t.price}","v":"{t.qty}","S":"{side}",'
        f'"seq":{t.trade_id},"s":"{t.symbol}","BT":false,"RPI":false}}'
    )


def trades_frame(trades: list[SimTrade]) -> str:
    """One publicTrade message: trades of one symbol, in order."""
    items = ",".join(trade_item(t) for t in trades)
    ts = trades[-1].ts_us // 1000 + EVENT_LAG_MS
    return f'{{"topic":"{TOPIC_PREFIX}{trades[0].symbol}","type":"snapshot","ts":{ts},"data":[{items}]}}'


def answer(op: object, success: bool, ret_msg: str, conn_id: str, req_id: object) -> str:
    """The answer to a request, shaped as Bybit's public spot answers."""
    return json.dumps({"success": success, "ret_msg": ret_msg, "conn_id": conn_id,
                       "req_id": "" if req_id is None else req_id, "op": op})


def pong(conn_id: str, req_id: object) -> str:
    return answer("ping", True, "pong", conn_id, req_id)


def subscribed(conn_id: str, req_id: object) -> str:
    return answer("subscribe", True, "subscribe", conn_id, req_id)


def unknown_topic(topic: str, conn_id: str, req_id: object) -> str:
    return answer("subscribe", False, f"error:handler not found,topic:{topic}", conn_id, req_id)


def bad(kind: str, t: SimTrade) -> str:
    """A malformed frame of ``kind`` (one of protocols.BAD_FRAME_KINDS) built from ``t``."""
    return malformed(kind, trades_frame([t]), (f'"p":"{t.price}"', f'"p":"{t.price}123456789"'),
                     (f'"s":"{t.symbol}"', '"s":"NOPEUSDT"'))


def instruments_info(pairs: list[tuple[str, str, str]], now_ms: int, not_trading: Collection[str] = ()) -> str:
    """A ``/v5/market/instruments-info?category=spot`` answer listing ``(symbol, base, quote)``;
    those in ``not_trading`` are ``PreLaunch``."""
    items = [{"symbol": s, "baseCoin": b, "quoteCoin": q, "innovation": "0",
              "status": "PreLaunch" if s in not_trading else "Trading",
              "marginTrading": "none", "stTag": "0",
              "lotSizeFilter": {"basePrecision": "0.000001", "quotePrecision": "0.00000001",
                                "minOrderQty": "0.000048", "maxOrderQty": "71.73956243",
                                "minOrderAmt": "1", "maxOrderAmt": "2000000"},
              "priceFilter": {"tickSize": "0.01"}}
             for s, b, q in pairs]
    return json.dumps({"retCode": 0, "retMsg": "OK", "result": {"category": "spot", "list": items},
                       "retExtInfo": {}, "time": now_ms})


# session --------------------------------------------------------------------------


class BybitSession(Session):
    exchange = "bybit"
    idle_cutoff_s = IDLE_CUTOFF_S

    def __init__(self, sim, conn, conn_id: int, query=None):  # noqa: ANN001 - the server's Simulator, connection, query
        super().__init__(sim, conn, conn_id)
        self.conn_tag = f"sim-bybit-{conn_id}"
        self.last_activity = time.monotonic()

    def bad_frame(self, kind: str, t: SimTrade) -> str:
        return bad(kind, t)

    async def on_open(self) -> None:
        self.sim.spawn(self._idle_cutoff())

    async def _idle_cutoff(self) -> None:
        while not self.closed:
            await asyncio.sleep(min(IDLE_SCAN_S, self.idle_cutoff_s))
            if time.monotonic() - self.last_activity > self.idle_cutoff_s:
                await self.close(1000, "no ping-pong and no data for too long")
                return

    async def on_message(self, message: str) -> None:
        try:
            req = json.loads(message)
            op = req["op"]
        except (ValueError, KeyError, TypeError):
            self.write(answer("", False, f"error:invalid request {message[:50]}", self.conn_tag, None))
            return
        req_id = req.get("req_id")
        if op == "ping":
            self.last_activity = time.monotonic()
            self.write(pong(self.conn_tag, req_id))
        elif op == "subscribe":
            self.write(self.subscribe(req.get("args"), req_id))
        elif op == "unsubscribe":
            args = req.get("args") if isinstance(req.get("args"), list) else []
            self.subscribed -= {a[len(TOPIC_PREFIX):] for a in args if isinstance(a, str)}
            self.write(answer("unsubscribe", True, "", self.conn_tag, req_id))
        else:
            self.write(answer(op, False, f"error:unknown op {str(op)[:50]}", self.conn_tag, req_id))

    def subscribe(self, args: object, req_id: object) -> str:
        """Subscribe every topic of one request, or none; the answer to send."""
        if not isinstance(args, list) or not args:
            return answer("subscribe", False, "error:args is empty or not a list", self.conn_tag, req_id)
        if len(args) > MAX_TOPICS_PER_SUBSCRIBE:
            return answer("subscribe", False, f"error:args size {len(args)} > {MAX_TOPICS_PER_SUBSCRIBE}",
                          self.conn_tag, req_id)
        known = self.sim.tapes[self.exchange].listed
        wanted = set()
        for topic in args:
            symbol = topic[len(TOPIC_PREFIX):] if isinstance(topic, str) and topic.startswith(TOPIC_PREFIX) else None
            if symbol not in known:
                return unknown_topic(str(topic), self.conn_tag, req_id)
            wanted.add(symbol)
        if args_chars(sorted(self.subscribed | wanted)) > MAX_ARGS_CHARS_PER_CONNECTION:
            return answer("subscribe", False, f"error:args length exceeds {MAX_ARGS_CHARS_PER_CONNECTION}",
                          self.conn_tag, req_id)
        self.subscribed |= wanted
        return subscribed(self.conn_tag, req_id)

    def offer(self, batch: list[SimTrade]) -> None:
        if self.stalled() or self.closed:
            return
        for trades in self.subscribed_by_symbol(batch).values():
            for start in range(0, len(trades), MAX_TRADES_PER_MESSAGE):
                if not self._send(trades[start : start + MAX_TRADES_PER_MESSAGE]):
                    return

    def _send(self, chunk: list[SimTrade]) -> bool:
        self.maybe_bad_frame(chunk[0])
        frame = trades_frame(chunk)
        if not self.write(frame):
            return False
        self.last_activity = time.monotonic()
        copies = 2 if self.cfg.duplicate_rate and self.rng.random() < self.cfg.duplicate_rate else 1
        if copies == 2:
            self.write(frame)
        for t in chunk:
            for i in range(copies):
                self.sent(t, "duplicate" if i else "update")
        return True

    def wire_time(self, t: SimTrade) -> tuple[object, str]:
        return t.ts_us // 1000, "ms"


class BybitProtocol(VenueProtocol):
    name = "bybit"
    session = BybitSession
    ws_paths = (PATH,)
    rest_prefix = "/v5/market/"  # the instruments metadata; Bybit has no trade history to serve
    metadata_path = INSTRUMENTS_INFO
    price_decimals = 2  # BTCUSDT's tickSize 0.01
    quotes = ("USDT", "USDC", "BTC", "EUR")
    connect_limit = ConnectLimit(MAX_CONNECTIONS_PER_5_MIN / 300, MAX_CONNECTIONS_PER_5_MIN,
                                 "500 connections in 5 minutes per WebSocket domain")

    def metadata(self, query: Mapping[str, list[str]]) -> RestReply:
        if (query.get("category") or [""])[0] != "spot":
            return RestReply(200, json.dumps({"retCode": 10001, "retMsg": "The simulator serves category=spot only",
                                              "result": {}, "retExtInfo": {}, "time": now_us() // 1000}))
        items = self.listings.values()
        return RestReply(200, instruments_info([(i.symbol, i.base, i.quote) for i in items], now_us() // 1000,
                                               {i.symbol for i in items if not i.trading}))

    def rest(self, path: str, query: Mapping[str, list[str]], headers: Mapping[str, str]) -> RestReply:
        return RestReply(404, json.dumps({"retCode": 10001, "retMsg": f"the simulator serves {INSTRUMENTS_INFO} only",
                                          "result": {}, "retExtInfo": {}, "time": now_us() // 1000}))

    def rate_limited(self, retry_after_s: int) -> RestReply:
        return RestReply(403, json.dumps({"retCode": 10006, "retMsg": "Too many visits!", "result": {},
                                          "retExtInfo": {}, "time": now_us() // 1000}))
