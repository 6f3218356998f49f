"""Binance's and Kraken's REST trade history, served by the simulator on its WebSocket port.

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


# Kraken ---------------------------------------------------------------------------
#
# ``GET /0/public/Trades?pair=XBTUSD&since=<ns>&count=1000`` answers HTTP 200 with
# ``{"error":[],"result":{"XBTUSD":[[price, volume, time, side, ordertype, misc, trade_id], ...],
# "last":"<ns>"}}``: trades with time > ``since`` (ns, exclusive), ascending, at most
# ``count`` (default and most 1000), the most recent ones without ``since``; ``last`` is
# the ns time of the last one listed. The
# real venue keys the list by its internal name (``XXBTZUSD``); the simulator by the
# pair asked for, which clients must not rely on either way. Errors come with HTTP 200 in
# ``error``. History older than the archive is not served: the answer starts at the
# oldest archived trade, as if nothing older existed.

KRAKEN_TRADES = "/0/public/Trades"
KRAKEN_MAX_COUNT = 1000


def kraken_error(*errors: str) -> RestReply:
    return RestReply(200, json.dumps({"error": list(errors)}))


def kraken_rate_limited() -> RestReply:
    return kraken_error("EAPI:Rate limit exceeded")


def kraken_rest_trade(t: SimTrade) -> list:
    seconds = f"{t.ts_us // 1_000_000}.{t.ts_us % 1_000_000:06d}"
    # time is a JSON number written with its µs digits (json.dumps would round a float).
    return [t.price, t.qty, _Raw(seconds), "b" if t.taker == "buy" else "s", "m", "",  # the stream says ord_type "market"
            t.trade_id]


class _Raw(str):
    """A number kept as its text, spliced into the JSON unquoted."""


def kraken_pair_symbols(symbols: list[str], aliases: Mapping[str, str]) -> dict[str, str]:
    """REST ``pair`` names accepted for each tape symbol: ``XBTUSD`` (altname), ``BTCUSD``, ``BTC/USD``."""
    reverse = {ours: theirs for theirs, ours in aliases.items()}
    names: dict[str, str] = {}
    for symbol in symbols:
        base, _, quote = symbol.partition("/")
        for name in (symbol, base + quote, reverse.get(base, base) + reverse.get(quote, quote)):
            names[name.upper()] = symbol
    return names


def kraken_trades(path: str, query: Mapping[str, list[str]], tape: Tape, pairs: Mapping[str, str]) -> RestReply:
    """Answer one Trades GET from ``tape`` (``pairs``: :func:`kraken_pair_symbols`)."""
    if path != KRAKEN_TRADES:
        return kraken_error(f"EGeneral:Unknown method {path}")
    pair = (query.get("pair") or [""])[0]
    if not pair:
        return kraken_error("EGeneral:Invalid arguments:pair")
    symbol = pairs.get(pair.upper())
    if symbol is None:
        return kraken_error("EQuery:Unknown asset pair")
    try:
        since = int((query.get("since") or ["0"])[0])
        count = int((query.get("count") or [str(KRAKEN_MAX_COUNT)])[0])
    except ValueError:
        return kraken_error("EGeneral:Invalid arguments")
    if not 1 <= count <= KRAKEN_MAX_COUNT:
        return kraken_error("EGeneral:Invalid arguments:count")
    # Without since: the most recent trades ("returns the last 1000 trades by default").
    trades = tape.after_ns(symbol, since, count) if "since" in query else tape.latest(symbol, count)
    last = trades[-1].ts_us * 1000 if trades else since
    items = ",".join(
        "[" + ",".join(str(v) if isinstance(v, _Raw | int) else json.dumps(v) for v in kraken_rest_trade(t)) + "]"
        for t in trades)
    body = f'{{"error":[],"result":{{{json.dumps(pair)}:[{items}],"last":"{last}"}}}}'
    return RestReply(200, body, {}, trades)
