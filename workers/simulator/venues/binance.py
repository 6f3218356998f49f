"""Binance spot as the simulator serves it: combined streams and the REST trade history.

WebSocket ``/stream?streams=btcusdt@trade/...[&timeUnit=MICROSECOND]`` (also on ``/``):
SUBSCRIBE/UNSUBSCRIBE/LIST_SUBSCRIPTIONS answered, ping frames every 20 s with a 60 s
pong deadline (the server's, see SimulatorConfig), ``serverShutdown`` before planned
closes. Frames as in docs/exchanges.md, built with f-strings (the simulator's hot path
when benchmarking).

REST, on the simulator's WebSocket port: Binance lets a client recover trades it missed (``docs/exchanges.md``):

* ``GET /api/v3/historicalTrades?symbol=BTCUSDT&fromId=5123456789&limit=1000``: up to
  ``limit`` (default 500, at most 1000) trades with id >= ``fromId``, ascending; the most
  recent ones without ``fromId``;
* ``GET /api/v3/trades?symbol=BTCUSDT&limit=500``: the most recent trades.

Each trade reads
``{"id":5123456789,"price":"94250.01000000","qty":"0.00210000","quoteQty":"197.92502100",
"time":1767225600120,"isBuyerMaker":true,"isBestMatch":true}``; ``time`` is ms unless the
request carries ``X-MBX-TIME-UNIT: MICROSECOND``. Errors are ``{"code":-1121,"msg":...}``
with HTTP 400, and 429 with ``Retry-After`` (seconds) when the client is over its weight.

``GET /api/v3/exchangeInfo[?symbol=X|symbols=["X","Y"]]`` lists the universe
(``symbol``, ``status`` ``TRADING`` or ``BREAK``, ``baseAsset``, ``quoteAsset``, ...); a
symbol asked for that is not listed answers -1121 "Invalid symbol." like Binance.

Limits, as Binance states them for spot streams (``docs/exchanges.md``): at most
:data:`MAX_STREAMS` streams per connection (in the URL or by SUBSCRIBE) and
:data:`MESSAGES_PER_S` incoming messages a second per connection; past either the
connection is closed with 1008. New connections: 300 per 5 minutes per IP (HTTP 429).

The answers come from the same tape the WebSocket sessions are fed from, so a trade's
id, price and qty text, time and side are identical on both paths. The handler is pure
(request in, :class:`RestReply` out) so it is unit-tested without a server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING

from workers.simulator.market import SimTrade, Tape
from workers.simulator.protocols import malformed
from workers.simulator.rest import RestReply
from workers.simulator.session import RateWindow, Session, now_us
from workers.simulator.universe import Listing
from workers.simulator.venues import ConnectLimit, VenueProtocol

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection

    from workers.simulator.server import Simulator

MAX_LIMIT = 1000
DEFAULT_LIMIT = 500
TRADE_PATHS = ("/api/v3/historicalTrades", "/api/v3/trades")
EXCHANGE_INFO = "/api/v3/exchangeInfo"
MAX_STREAMS = 1024  # "A single connection can listen to a maximum of 1024 streams."
MESSAGES_PER_S = 5  # "WebSocket connections have a limit of 5 incoming messages per second."


def rest_trade(t: SimTrade, microseconds: bool) -> dict:
    quote = Decimal(t.price) * Decimal(t.qty)
    return {
        "id": t.trade_id,
        "price": t.price,
        "qty": t.qty,
        "quoteQty": f"{quote:.8f}",
        "time": t.ts_us if microseconds else t.ts_us // 1000,
        "isBuyerMaker": t.taker == "sell",  # buyer is maker <=> the taker sold, as on the stream
        "isBestMatch": True,
    }


def error(status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> RestReply:
    return RestReply(status, json.dumps({"code": code, "msg": msg}), headers or {})


def too_many_requests(retry_after_s: int) -> RestReply:
    return error(
        429, -1003,
        "Too many requests; current limit of IP is 6000 request weight per 1 MINUTE. "
        "Please use WebSocket Streams for live updates to avoid polling the API.",
        {"Retry-After": str(retry_after_s)},
    )


def binance_trades(path: str, query: Mapping[str, list[str]], headers: Mapping[str, str], tape: Tape) -> RestReply:
    """Answer one trade-history GET from ``tape`` (``path`` is one of :data:`TRADE_PATHS`)."""
    if path not in TRADE_PATHS:
        return error(404, -1000, f"unknown path {path}; the simulator serves {', '.join(TRADE_PATHS)}")
    symbol = (query.get("symbol") or [""])[0]
    if not symbol:
        return error(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
    if symbol not in tape.archive:
        return error(400, -1121, "Invalid symbol.")
    try:
        limit = int((query.get("limit") or [str(DEFAULT_LIMIT)])[0])
        from_id = query.get("fromId")
        start = int(from_id[0]) if from_id and path.endswith("historicalTrades") else None
    except ValueError:
        return error(400, -1100, "Illegal characters found in a parameter.")
    if not 1 <= limit <= MAX_LIMIT:
        return error(400, -1130, "Data sent for parameter 'limit' is not valid.")
    microseconds = str(headers.get("X-MBX-TIME-UNIT", "")).upper() == "MICROSECOND"
    trades = tape.latest(symbol, limit) if start is None else tape.since(symbol, start, limit)
    body = json.dumps([rest_trade(t, microseconds) for t in trades], separators=(",", ":"))
    return RestReply(200, body, {}, trades)


def symbol_info(item: Listing) -> dict:
    return {
        "symbol": item.symbol, "status": "TRADING" if item.trading else "BREAK",
        "baseAsset": item.base, "baseAssetPrecision": 8, "quoteAsset": item.quote, "quotePrecision": 8,
        "quoteAssetPrecision": 8, "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"], "icebergAllowed": True,
        "ocoAllowed": True, "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
        "filters": [], "permissions": [], "permissionSets": [["SPOT"]],
    }


def exchange_info(listings: Mapping[str, Listing], query: Mapping[str, list[str]], now_ms: int) -> RestReply:
    """``/api/v3/exchangeInfo``: every listing, or those ``symbol``/``symbols`` name."""
    wanted: list[str] = list(listings)
    try:
        if "symbol" in query:
            wanted = [query["symbol"][0]]
        elif "symbols" in query:
            wanted = json.loads(query["symbols"][0])
            if not isinstance(wanted, list) or not all(isinstance(w, str) for w in wanted):
                raise ValueError(wanted)
    except ValueError:
        return error(400, -1100, "Illegal characters found in parameter 'symbols'.")
    if any(w not in listings for w in wanted):
        return error(400, -1121, "Invalid symbol.")
    body = {"timezone": "UTC", "serverTime": now_ms, "rateLimits": [], "exchangeFilters": [],
            "symbols": [symbol_info(listings[w]) for w in wanted]}
    return RestReply(200, json.dumps(body, separators=(",", ":")))


# WebSocket frames ----------------------------------------------------------------


def binance_time(ts_us: int, microseconds: bool) -> int:
    return ts_us if microseconds else ts_us // 1000


def binance_trade(t: SimTrade, microseconds: bool, event_lag_us: int = 5000) -> str:
    T = binance_time(t.ts_us, microseconds)
    E = binance_time(t.ts_us + event_lag_us, microseconds)
    m = "true" if t.taker == "sell" else "false"  # buyer is maker <=> taker sold
    return (
        f'{{"stream":"{t.symbol.lower()}@trade","data":{{"e":"trade","E":{E},"s":"{t.symbol}",'
        f'"t":{t.trade_id},"p":"{t.price}","q":"{t.qty}","T":{T},"m":{m},"M":true}}}}'
    )


def binance_server_shutdown(now_us: int) -> str:
    return f'{{"stream":"!serverShutdown","data":{{"e":"serverShutdown","E":{now_us // 1000}}}}}'


def binance_bad(kind: str, t: SimTrade, microseconds: bool) -> str:
    return malformed(kind, binance_trade(t, microseconds), (f'"p":"{t.price}"', f'"p":"{t.price}123456789"'),
                     (f'"s":"{t.symbol}"', '"s":"NOPEUSDT"'))


class BinanceSession(Session):
    exchange = "binance"

    def __init__(self, sim: Simulator, conn: ServerConnection, conn_id: int,
                 query: Mapping[str, list[str]] | None = None):
        super().__init__(sim, conn, conn_id)
        query = query or {}
        self.microseconds = query.get("timeUnit", ["MILLISECOND"])[0].upper() == "MICROSECOND"
        streams = query.get("streams", [""])[0]
        self.streams: set[str] = set(streams.split("/")) if streams else set()  # every stream asked, known or not
        self.subscribed = self._symbols_of(self.streams)
        self.messages = RateWindow(MESSAGES_PER_S, 1.0)

    def _symbols_of(self, streams: set[str] | list[str]) -> set[str]:
        by_stream = self.sim.markets["binance"].venue.by_stream
        return {by_stream[s] for s in streams if s in by_stream}

    async def on_open(self) -> None:
        if len(self.streams) > MAX_STREAMS:
            await self.refuse("streams_per_connection", f"{len(self.streams)} streams > {MAX_STREAMS}")

    def bad_frame(self, kind: str, t: SimTrade) -> str:
        return binance_bad(kind, t, self.microseconds)

    def trade_frame(self, t: SimTrade) -> str:
        return binance_trade(t, self.microseconds)

    def wire_time(self, t: SimTrade) -> tuple[object, str]:
        return binance_time(t.ts_us, self.microseconds), "us" if self.microseconds else "ms"

    async def on_message(self, message: str) -> None:
        if self.messages.over():
            await self.refuse("messages_per_second", f"more than {MESSAGES_PER_S} incoming messages in 1 s",
                              reason="Too many requests")
            return
        try:
            req = json.loads(message)
            method, req_id = req["method"], req["id"]
        except (ValueError, KeyError, TypeError):
            self.write(json.dumps({"code": 2, "msg": f"Invalid request: {message[:100]}"}))
            return
        params = req.get("params") or []
        if method == "SUBSCRIBE":
            streams = self.streams | {p for p in params if isinstance(p, str)}
            if len(streams) > MAX_STREAMS:
                await self.refuse("streams_per_connection", f"{len(streams)} streams > {MAX_STREAMS}")
                return
            self.streams = streams
            self.subscribed |= self._symbols_of(streams)
            self.write(json.dumps({"result": None, "id": req_id}))
        elif method == "UNSUBSCRIBE":
            gone = {p for p in params if isinstance(p, str)}
            self.streams -= gone
            self.subscribed -= self._symbols_of(gone)
            self.write(json.dumps({"result": None, "id": req_id}))
        elif method == "LIST_SUBSCRIPTIONS":
            self.write(json.dumps({"result": sorted(self.streams), "id": req_id}))
        else:
            self.write(json.dumps({"code": 2, "msg": f"Invalid request: unknown method {method!r}"}))

    async def notify_shutdown(self) -> None:
        if self.write(binance_server_shutdown(now_us())):
            self.rec.write(ev="control", exchange="binance", conn=self.id, kind="server_shutdown")
        await asyncio.sleep(self.cfg.shutdown_grace_s)
        await self.close(1001, "server shutdown")


class BinanceProtocol(VenueProtocol):
    name = "binance"
    session = BinanceSession
    ws_paths = ("", "/stream")
    rest_prefix = "/api/"
    metadata_path = EXCHANGE_INFO
    price_decimals = 2
    pad_to = 8  # Binance writes fixed 8 decimals ("94250.01000000")
    connect_limit = ConnectLimit(1.0, 300, "300 connection attempts per 5 minutes per IP")
    quotes = ("USDT", "USDC", "FDUSD", "BTC", "ETH", "EUR", "TRY")
    full_market_symbols = 2000

    def __init__(self, tape: Tape, listings: Mapping[str, Listing] | None = None):
        super().__init__(tape, listings)
        # "<symbol>@trade" -> symbol, for the symbols trading now (streams are lower case).
        self.by_stream = {f"{s.lower()}@trade": s for s in tape.symbols}

    def listed(self, listing: Listing) -> None:
        super().listed(listing)
        if listing.trading:
            self.by_stream[f"{listing.symbol.lower()}@trade"] = listing.symbol

    def delisted(self, symbol: str) -> None:
        super().delisted(symbol)
        self.by_stream.pop(f"{symbol.lower()}@trade", None)

    def metadata(self, query: Mapping[str, list[str]]) -> RestReply:
        return exchange_info(self.listings, query, now_us() // 1000)

    def rest(self, path: str, query: Mapping[str, list[str]], headers: Mapping[str, str]) -> RestReply:
        return binance_trades(path, query, headers, self.tape)

    def rate_limited(self, retry_after_s: int) -> RestReply:
        return too_many_requests(retry_after_s)
