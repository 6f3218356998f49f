"""Binance's REST trade history, served by the simulator on its WebSocket port.

Binance lets a client recover trades it missed (``docs/exchanges.md``):

* ``GET /api/v3/historicalTrades?symbol=BTCUSDT&fromId=5123456789&limit=1000``: up to
  ``limit`` (default 500, at most 1000) trades with id >= ``fromId``, ascending; the most
  recent ones without ``fromId``;
* ``GET /api/v3/trades?symbol=BTCUSDT&limit=500``: the most recent trades.

Each trade reads
``{"id":5123456789,"price":"94250.01000000","qty":"0.00210000","quoteQty":"197.92502100",
"time":1767225600120,"isBuyerMaker":true,"isBestMatch":true}``; ``time`` is ms unless the
request carries ``X-MBX-TIME-UNIT: MICROSECOND``. Errors are ``{"code":-1121,"msg":...}``
with HTTP 400, and 429 with ``Retry-After`` (seconds) when the client is over its weight.

The answers come from the same tape the WebSocket sessions are fed from, so a trade's
id, price and qty text, time and side are identical on both paths. The handler is pure
(request in, :class:`RestReply` out) so it is unit-tested without a server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from workers.simulator.market import SimTrade, Tape

MAX_LIMIT = 1000
DEFAULT_LIMIT = 500
TRADE_PATHS = ("/api/v3/historicalTrades", "/api/v3/trades")


@dataclass
class RestReply:
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)
    trades: list[SimTrade] = field(default_factory=list)  # what the body lists (for the record)


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
