"""Kraken WebSocket v2 as the simulator serves it, and its REST trade history.

WebSocket ``/v2``: status on connect, one ack per symbol with ``success:false`` for
unknown or v1 names, snapshot of the last 50 trades on subscribe, trades batched up to
``SimulatorConfig.batch`` per message (qty sometimes in exponent form,
``exponent_rate``), heartbeats every ``heartbeat_s`` while subscribed, application
ping/pong. REST ``/0/public/Trades`` from the same tape (below) and ``/0/public/AssetPairs``
(the universe: ``wsname`` with Kraken's own asset names, XBT for BTC, ``status``
``online`` or ``cancel_only``). Frames as in docs/exchanges.md.

Kraken states no fixed per-connection limit for public subscriptions (its message rate
limit is "dynamic", answered ``Exceeded msg rate``), so none is enforced here.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

from workers.exchanges.kraken import ASSET_ALIASES
from workers.simulator.market import SimTrade, Tape
from workers.simulator.protocols import malformed, rfc3339
from workers.simulator.rest import RestReply
from workers.simulator.session import Session, now_us
from workers.simulator.universe import Listing
from workers.simulator.venues import VenueProtocol


def kraken_number(text: str, exponent: bool) -> str:
    """Decimal text as a JSON number, optionally in exponent form (as Kraken sometimes sends)."""
    if exponent and "." in text:
        digits = text.replace(".", "").lstrip("0") or "0"
        point = len(text.split(".")[1])
        return f"{digits}e-{point}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def kraken_item(t: SimTrade, exponent_qty: bool = False) -> str:
    return (
        f'{{"symbol":"{t.symbol}","side":"{t.taker}","price":{kraken_number(t.price, False)},'
        f'"qty":{kraken_number(t.qty, exponent_qty)},"ord_type":"market","trade_id":{t.trade_id},'
        f'"timestamp":"{rfc3339(t.ts_us)}"}}'
    )


def kraken_trades(items: list[str], snapshot: bool = False) -> str:
    kind = "snapshot" if snapshot else "update"
    return f'{{"channel":"trade","type":"{kind}","data":[{",".join(items)}]}}'


def kraken_status(connection_id: int) -> str:
    return json.dumps({"channel": "status", "type": "update", "data": [
        {"api_version": "v2", "connection_id": connection_id, "system": "online", "version": "2.0.10"}]})


HEARTBEAT = '{"channel":"heartbeat"}'


def kraken_ack(symbol: str, req_id: object, snapshot: bool, now_us: int) -> str:
    return json.dumps({
        "method": "subscribe",
        "result": {"channel": "trade", "symbol": symbol, "snapshot": snapshot},
        "success": True, "time_in": rfc3339(now_us), "time_out": rfc3339(now_us), "req_id": req_id,
    })


def kraken_error(method: str, error: str, req_id: object, now_us: int, symbol: str | None = None) -> str:
    doc: dict = {"error": error, "method": method, "req_id": req_id, "success": False,
                 "time_in": rfc3339(now_us), "time_out": rfc3339(now_us)}
    if symbol is not None:
        doc["symbol"] = symbol
    return json.dumps(doc)


def kraken_pong(req_id: object, now_us: int) -> str:
    return json.dumps({"method": "pong", "req_id": req_id, "time_in": rfc3339(now_us), "time_out": rfc3339(now_us)})


def kraken_bad(kind: str, t: SimTrade) -> str:
    return malformed(kind, kraken_trades([kraken_item(t)]),
                     (f'"price":{kraken_number(t.price, False)}', '"price":1.123456789'),
                     (f'"symbol":"{t.symbol}"', '"symbol":"NOPE/USD"'))


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
KRAKEN_ASSET_PAIRS = "/0/public/AssetPairs"
KRAKEN_MAX_COUNT = 1000


def kraken_rest_error(*errors: str) -> RestReply:
    return RestReply(200, json.dumps({"error": list(errors)}))


def kraken_rate_limited() -> RestReply:
    return kraken_rest_error("EAPI:Rate limit exceeded")


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


def kraken_trades_reply(path: str, query: Mapping[str, list[str]], tape: Tape, pairs: Mapping[str, str]) -> RestReply:
    """Answer one Trades GET from ``tape`` (``pairs``: :func:`kraken_pair_symbols`)."""
    if path != KRAKEN_TRADES:
        return kraken_rest_error(f"EGeneral:Unknown method {path}")
    pair = (query.get("pair") or [""])[0]
    if not pair:
        return kraken_rest_error("EGeneral:Invalid arguments:pair")
    symbol = pairs.get(pair.upper())
    if symbol is None:
        return kraken_rest_error("EQuery:Unknown asset pair")
    try:
        since = int((query.get("since") or ["0"])[0])
        count = int((query.get("count") or [str(KRAKEN_MAX_COUNT)])[0])
    except ValueError:
        return kraken_rest_error("EGeneral:Invalid arguments")
    if not 1 <= count <= KRAKEN_MAX_COUNT:
        return kraken_rest_error("EGeneral:Invalid arguments:count")
    # Without since: the most recent trades ("returns the last 1000 trades by default").
    trades = tape.after_ns(symbol, since, count) if "since" in query else tape.latest(symbol, count)
    last = trades[-1].ts_us * 1000 if trades else since
    items = ",".join(
        "[" + ",".join(str(v) if isinstance(v, _Raw | int) else json.dumps(v) for v in kraken_rest_trade(t)) + "]"
        for t in trades)
    body = f'{{"error":[],"result":{{{json.dumps(pair)}:[{items}],"last":"{last}"}}}}'
    return RestReply(200, body, {}, trades)


def asset_pairs(listings: Mapping[str, Listing], query: Mapping[str, list[str]],
                aliases: Mapping[str, str]) -> RestReply:
    """``/0/public/AssetPairs[?pair=A,B]``: the listings keyed by altname, ``wsname`` in
    Kraken's asset names (``XBT/USD``), as the venue writes them."""
    theirs = {ours: kraken for kraken, ours in aliases.items()}
    result = {}
    for item in listings.values():
        base, quote = theirs.get(item.base, item.base), theirs.get(item.quote, item.quote)
        result[base + quote] = {
            "altname": base + quote, "wsname": f"{base}/{quote}", "aclass_base": "currency", "base": base,
            "aclass_quote": "currency", "quote": quote, "pair_decimals": 5, "cost_decimals": 5, "lot_decimals": 8,
            "lot_multiplier": 1, "ordermin": "0.0001", "status": "online" if item.trading else "cancel_only",
        }
    wanted = [p.strip().upper() for p in (query.get("pair") or [""])[0].split(",") if p.strip()]
    if wanted:
        if any(w not in result for w in wanted):
            return kraken_rest_error("EQuery:Unknown asset pair")
        result = {w: result[w] for w in wanted}
    return RestReply(200, json.dumps({"error": [], "result": result}, separators=(",", ":")))


class KrakenSession(Session):
    exchange = "kraken"

    def bad_frame(self, kind: str, t: SimTrade) -> str:
        return kraken_bad(kind, t)

    async def on_open(self) -> None:
        self.write(kraken_status(self.id))
        self.sim.spawn(self._heartbeats())

    async def _heartbeats(self) -> None:
        while not self.closed:
            await asyncio.sleep(self.cfg.heartbeat_s)
            if self.subscribed and not self.stalled():
                self.write(HEARTBEAT)

    async def on_message(self, message: str) -> None:
        ts = now_us()
        try:
            req = json.loads(message)
            method = req["method"]
        except (ValueError, KeyError, TypeError):
            self.write(kraken_error("unknown", "Malformed request", None, ts))
            return
        req_id = req.get("req_id")
        if method == "ping":
            self.write(kraken_pong(req_id, ts))
        elif method == "subscribe":
            self._subscribe(req.get("params") or {}, req_id, ts)
        else:
            self.write(kraken_error(str(method), f"Method not supported: {method}", req_id, ts))

    def _subscribe(self, params: dict, req_id: object, ts: int) -> None:
        if params.get("channel") != "trade":
            self.write(kraken_error("subscribe", "Channel not supported", req_id, ts))
            return
        tape = self.sim.tapes[self.exchange]
        snapshot = bool(params.get("snapshot", True))
        for symbol in params.get("symbol") or []:
            if symbol not in tape.listed:
                self.write(kraken_error("subscribe", f"Currency pair not supported {symbol}", req_id, ts, symbol))
                continue
            self.write(kraken_ack(symbol, req_id, snapshot, ts))
            if snapshot and not self.stalled():
                self._send_trades(list(tape.history[symbol]), snapshot=True)
            self.subscribed.add(symbol)

    def offer(self, batch: list[SimTrade]) -> None:
        if self.stalled() or self.closed:
            return
        # Drops: trade ids the v2 stream never sends, as reported in krakenfx/api-go#36.
        for trades in self.subscribed_by_symbol(batch).values():
            self._send_trades(trades, snapshot=False)

    def _send_trades(self, trades: list[SimTrade], snapshot: bool) -> None:
        cfg, rng = self.cfg, self.rng
        size = max(1, cfg.batch)
        for start in range(0, len(trades), size):
            chunk = trades[start : start + size]
            exponent = [bool(cfg.exponent_rate) and rng.random() < cfg.exponent_rate for _ in chunk]
            if not snapshot:
                self.maybe_bad_frame(chunk[0])
            frame = kraken_trades([kraken_item(t, e) for t, e in zip(chunk, exponent, strict=True)], snapshot)
            if not self.write(frame):
                return
            copies = 2 if not snapshot and cfg.duplicate_rate and rng.random() < cfg.duplicate_rate else 1
            if copies == 2:
                self.write(frame)
            for t, e in zip(chunk, exponent, strict=True):
                for i in range(copies):
                    self.sent(t, "duplicate" if i else ("snapshot" if snapshot else "update"),
                              price_wire=kraken_number(t.price, False), qty_wire=kraken_number(t.qty, e))

    def wire_time(self, t: SimTrade) -> tuple[object, str]:
        return rfc3339(t.ts_us), "rfc3339"


class KrakenProtocol(VenueProtocol):
    name = "kraken"
    session = KrakenSession
    ws_paths = ("/v2",)
    rest_prefix = "/0/public/"
    metadata_path = KRAKEN_ASSET_PAIRS
    separator = "/"
    quotes = ("USD", "EUR", "USDT", "GBP", "BTC")
    full_market_symbols = 1000
    price_decimals = 1

    def __init__(self, tape: Tape, listings: Mapping[str, Listing] | None = None):
        super().__init__(tape, listings)
        self.pairs = kraken_pair_symbols(list(tape.archive), ASSET_ALIASES)

    def listed(self, listing: Listing) -> None:
        super().listed(listing)
        self.pairs.update(kraken_pair_symbols([listing.symbol], ASSET_ALIASES))

    def metadata(self, query: Mapping[str, list[str]]) -> RestReply:
        return asset_pairs(self.listings, query, ASSET_ALIASES)

    def rest(self, path: str, query: Mapping[str, list[str]], headers: Mapping[str, str]) -> RestReply:
        return kraken_trades_reply(path, query, self.tape, self.pairs)

    def rate_limited(self, retry_after_s: int) -> RestReply:
        return kraken_rate_limited()
