"""OKX v5 as the simulator speaks it: ``trades-all`` on ``/ws/v5/business``, REST history.

Frames are pure f-string builders from :class:`SimTrade` (the benchmark's hot path);
:class:`OkxSession` is one client connection: ``subscribe`` answered per argument (an
``error`` 60018 for an instrument the tape does not have), the text ``ping`` answered
with ``pong``, a connection that neither sent nor received anything for
:data:`IDLE_CLOSE_S` closed with 4004 like OKX does, ``notice`` 64008 before a planned
close, and one push per trade. :func:`rest_trades` answers ``history-trades`` and
``trades`` from the same tape, so both paths carry identical ids, text and times. OKX
times are ms: a tape trade's µs are truncated on the wire.

``GET /api/v5/public/instruments?instType=SPOT`` lists the universe (``state`` ``live``,
or ``preopen`` for a symbol listed but not trading yet). Limits as OKX states them
(docs/exchanges/okx.md): :data:`~workers.exchanges.okx.SUBSCRIBE_REQUESTS_PER_HOUR`
subscribe/unsubscribe requests per connection (past it: error 60014 "Requests too
frequent", nothing subscribed), :data:`~workers.exchanges.okx.SUBSCRIBE_MAX_BYTES` per
request (past it: error 60012), 3 new connections a second per IP.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from workers.exchanges import okx
from workers.simulator.market import SimTrade, Tape
from workers.simulator.protocols import malformed
from workers.simulator.rest import RestReply
from workers.simulator.session import RateWindow, Session
from workers.simulator.universe import Listing
from workers.simulator.venues import ConnectLimit, VenueProtocol

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection

    from workers.simulator.server import Simulator

PATH = "/ws/v5/business"
REST_PREFIX = "/api/v5/"
PRICE_DECIMALS = 1  # tape price tick, like BTC-USDT's tickSz 0.1
IDLE_CLOSE_S = okx.IDLE_CLOSE_S
PONG = "pong"


# frames -------------------------------------------------------------------------------


def ms(ts_us: int) -> int:
    return ts_us // 1000


def item(t: SimTrade) -> str:
    return (f'{{"instId":"{t.symbol}","tradeId":"{t.trade_id}","px":"{t.price}","sz":"{t.qty}",'
            f'"side":"{t.taker}","source":"0","ts":"{ms(t.ts_us)}"}}')


def trade(t: SimTrade) -> str:
    """One ``trades-all`` push: every fill on its own."""
    return f'{{"arg":{{"channel":"trades-all","instId":"{t.symbol}"}},"data":[{item(t)}]}}'


def ack(op: str, arg: Mapping[str, object], req_id: object, conn_id: str) -> str:
    doc: dict = {"event": op, "arg": dict(arg), "connId": conn_id}
    if req_id is not None:
        doc = {"id": req_id, **doc}
    return json.dumps(doc, separators=(",", ":"))


def error(code: str, msg: str, req_id: object, conn_id: str) -> str:
    doc: dict = {"event": "error", "code": code, "msg": msg, "connId": conn_id}
    if req_id is not None:
        doc = {"id": req_id, **doc}
    return json.dumps(doc, separators=(",", ":"))


def notice(conn_id: str) -> str:
    return json.dumps({"event": "notice", "code": okx.SERVICE_UPGRADE,
                       "msg": "The connection will soon be closed for a service upgrade. Please reconnect.",
                       "connId": conn_id}, separators=(",", ":"))


def bad(kind: str, t: SimTrade) -> str:
    return malformed(kind, trade(t), (f'"px":"{t.price}"', f'"px":"{t.price}123456789"'),
                     (f'"instId":"{t.symbol}","tradeId"', '"instId":"NOPE-USDT","tradeId"'))


# session ------------------------------------------------------------------------------


class OkxSession(Session):
    exchange = "okx"

    def __init__(self, sim: Simulator, conn: ServerConnection, conn_id: int,
                 query: Mapping[str, list[str]] | None = None):
        super().__init__(sim, conn, conn_id)
        self.conn_tag = f"{conn_id:08x}"  # OKX's connId is 8 hex digits
        self.active_at = time.monotonic()  # last frame either way (OKX's 30 s idle rule)
        self.idle_close_s = IDLE_CLOSE_S
        self.requests = RateWindow(okx.SUBSCRIBE_REQUESTS_PER_HOUR, 3600.0)

    def bad_frame(self, kind: str, t: SimTrade) -> str:
        return bad(kind, t)

    def write(self, text: str) -> bool:
        sent = super().write(text)
        if sent:
            self.active_at = time.monotonic()
        return sent

    async def on_open(self) -> None:
        self.sim.spawn(self._idle_watch())

    async def _idle_watch(self) -> None:
        while not self.closed:
            idle = time.monotonic() - self.active_at
            if idle >= self.idle_close_s:
                await self.close(4004, "No data received in 30s")
                return
            await asyncio.sleep(self.idle_close_s - idle)

    async def on_message(self, message: str) -> None:
        self.active_at = time.monotonic()
        if message == "ping":
            self.write(PONG)
            return
        try:
            req = json.loads(message)
            op, args = req["op"], req.get("args") or []
        except (ValueError, KeyError, TypeError):
            self.write(error("60012", f"Invalid request: {message[:100]}", None, self.conn_tag))
            return
        req_id = req.get("id")
        if op not in ("subscribe", "unsubscribe") or not isinstance(args, list):
            self.write(error("60019", f"Invalid op: {op}", req_id, self.conn_tag))
            return
        if len(message.encode()) > okx.SUBSCRIBE_MAX_BYTES:
            self.sim.over_limit("okx", self.id, "subscribe_bytes", f"{len(message.encode())} bytes > "
                                f"{okx.SUBSCRIBE_MAX_BYTES}")
            self.write(error("60012", f"Invalid request: the request exceeds {okx.SUBSCRIBE_MAX_BYTES} bytes",
                             req_id, self.conn_tag))
            return
        if self.requests.over():
            self.sim.over_limit("okx", self.id, "subscribe_requests_per_hour",
                                f"more than {okx.SUBSCRIBE_REQUESTS_PER_HOUR} in an hour")
            self.write(error("60014", "Requests too frequent.", req_id, self.conn_tag))
            return
        symbols = self.sim.tapes["okx"].listed
        for arg in args:
            channel, inst = (arg.get("channel"), arg.get("instId")) if isinstance(arg, dict) else (None, None)
            if channel != okx.CHANNEL or inst not in symbols:
                self.write(error(okx.UNKNOWN_CHANNEL, f"Wrong URL or channel:{channel},instId:{inst} doesn't "
                                 "exist. Please use the correct URL, channel and parameters referring to API "
                                 "document.", req_id, self.conn_tag))
            else:
                (self.subscribed.add if op == "subscribe" else self.subscribed.discard)(inst)
                self.write(ack(op, arg, req_id, self.conn_tag))

    def trade_frame(self, t: SimTrade) -> str:
        return trade(t)

    def wire_time(self, t: SimTrade) -> tuple[object, str]:
        return str(ms(t.ts_us)), "ms"

    async def notify_shutdown(self) -> None:
        if self.write(notice(self.conn_tag)):
            self.rec.write(ev="control", exchange="okx", conn=self.id, kind="server_shutdown")
        await asyncio.sleep(self.cfg.shutdown_grace_s)
        await self.close(1001, "server shutdown")


# REST ---------------------------------------------------------------------------------


def rest_item(t: SimTrade) -> dict:
    return {"instId": t.symbol, "side": t.taker, "sz": t.qty, "source": "0", "px": t.price,
            "tradeId": str(t.trade_id), "ts": str(ms(t.ts_us))}


def rest_error(status: int, code: str, msg: str) -> RestReply:
    return RestReply(status, json.dumps({"code": code, "msg": msg, "data": []}))


def rate_limited() -> RestReply:
    return rest_error(429, okx.RATE_LIMITED, "Too Many Requests")


def rest_trades(path: str, query: Mapping[str, list[str]], tape: Tape) -> RestReply:
    """Answer ``history-trades`` (``after``/``before`` tradeIds, newest first, at most 100)
    or ``trades`` (the newest, at most 500) from ``tape``; history older than the archive is
    not served, as if OKX's three months had passed."""
    history = path == okx.HISTORY_TRADES
    if not history and path != okx.RECENT_TRADES:
        return rest_error(404, "50000", f"unknown path {path}")
    symbol = (query.get("instId") or [""])[0]
    if not symbol:
        return rest_error(400, "50014", "Parameter instId can not be empty.")
    if symbol not in tape.archive:
        return rest_error(400, "51001", "Instrument ID does not exist.")
    try:
        limit = int((query.get("limit") or ["100"])[0])
        after = int(query["after"][0]) if history and "after" in query else None
        before = int(query["before"][0]) if history and "before" in query else None
    except ValueError:
        return rest_error(400, "50014", "Parameter limit, after or before error.")
    if history and (query.get("type") or ["1"])[0] != "1":
        return rest_error(400, "51000", "The simulator pages by tradeId (type=1) only.")
    if not 1 <= limit <= (okx.HISTORY_MAX_LIMIT if history else 500):
        return rest_error(400, "51000", "Parameter limit error")
    if after is not None:
        trades = [t for t in tape.since(symbol, after - limit, limit) if t.trade_id < after]
    else:
        trades = tape.latest(symbol, limit if before is None else len(tape.archive[symbol]))
    if before is not None:
        trades = [t for t in trades if t.trade_id > before][-limit:]
    trades.reverse()  # newest first, as OKX lists them
    body = json.dumps({"code": "0", "msg": "", "data": [rest_item(t) for t in trades]}, separators=(",", ":"))
    return RestReply(200, body, {}, trades)


def instruments(listings: Mapping[str, Listing], query: Mapping[str, list[str]]) -> RestReply:
    """``/api/v5/public/instruments?instType=SPOT[&instId=X]``: the listings as OKX lists them."""
    inst_type = (query.get("instType") or [""])[0]
    if not inst_type:
        return rest_error(400, "50014", "Parameter instType can not be empty.")
    if inst_type != "SPOT":
        return RestReply(200, json.dumps({"code": "0", "msg": "", "data": []}))
    wanted = (query.get("instId") or [None])[0]
    items = [{
        "instType": "SPOT", "instId": item.symbol, "uly": "", "instFamily": "", "baseCcy": item.base,
        "quoteCcy": item.quote, "settleCcy": "", "ctVal": "", "ctMult": "", "ctValCcy": "", "optType": "",
        "stk": "", "listTime": "1700000000000", "expTime": "", "lever": "", "tickSz": "0.1",
        "lotSz": "0.00000001", "minSz": "0.00001", "ctType": "", "alias": "",
        "state": "live" if item.trading else "preopen", "ruleType": "normal", "maxLmtSz": "9999999999",
    } for item in listings.values() if wanted is None or item.symbol == wanted]
    if wanted is not None and not items:
        return rest_error(400, "51001", "Instrument ID does not exist.")
    return RestReply(200, json.dumps({"code": "0", "msg": "", "data": items}, separators=(",", ":")))


class OkxProtocol(VenueProtocol):
    name = "okx"
    session = OkxSession
    ws_paths = (PATH,)
    rest_prefix = REST_PREFIX
    metadata_path = okx.INSTRUMENTS
    separator = "-"
    price_decimals = PRICE_DECIMALS
    connect_limit = ConnectLimit(okx.CONNECTS_PER_SECOND, okx.CONNECTS_PER_SECOND, "3 requests per second (based on IP)")
    quotes = ("USDT", "USDC", "BTC", "EUR")

    def metadata(self, query: Mapping[str, list[str]]) -> RestReply:
        return instruments(self.listings, query)

    def rest(self, path: str, query: Mapping[str, list[str]], headers: Mapping[str, str]) -> RestReply:
        return rest_trades(path, query, self.tape)

    def rate_limited(self, retry_after_s: int) -> RestReply:
        return rate_limited()
