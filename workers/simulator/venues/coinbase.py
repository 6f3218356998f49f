"""Coinbase Exchange as the simulator speaks it: ``matches`` + ``heartbeat`` frames and the
REST trade history, from the shared tape (see :mod:`workers.exchanges.coinbase`).

Frame builders are pure f-strings over :class:`SimTrade` (the benchmark's hot path);
:class:`CoinbaseSession` holds the per-connection protocol: a subscribe within
:data:`SUBSCRIBE_DEADLINE_S` or the connection is closed, one ``subscriptions`` ack per
subscribe (an ``error`` "Failed to subscribe" naming the first unknown product or
channel, the whole message then rejected), ``last_match`` per newly subscribed product,
one match per trade, a heartbeat per product a second. Coinbase sends no planned-close
notice, so a shutdown is a plain close.

``GET /products`` lists the universe (``id``, ``base_currency``, ``quote_currency``,
``status`` ``online`` or ``offline`` with ``trading_disabled``). Limits as Coinbase
states them (docs/exchanges/coinbase.md): :data:`SAME_SUBSCRIPTIONS_MAX` subscriptions
per product and channel over all connections (the next one is rejected with an
``error``), :data:`CLIENT_MESSAGES_PER_S` client messages a second per IP (past it: an
``error``, then the connection is closed), 8 new connections a second in bursts of 20.

Two things the simulator makes up, since the feed's values are not derivable from a
tape: order ids (a fixed pattern around the trade id) and ``sequence`` (3 × trade id,
heartbeats 3 × last trade id + 1: increasing per product, as on the venue).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from workers.exchanges.coinbase import (
    CHANNELS,
    CLIENT_MESSAGES_PER_S,
    CONNECTS_BURST,
    CONNECTS_PER_S,
    PRODUCTS_PATH,
    REST_PAGE_MAX,
    SAME_SUBSCRIPTIONS_MAX,
    SUBSCRIBE_DEADLINE_S,
)
from workers.simulator.market import SimTrade, Tape
from workers.simulator.protocols import malformed, rfc3339
from workers.simulator.rest import RestReply
from workers.simulator.session import Session, now_us
from workers.simulator.universe import Listing
from workers.simulator.venues import ConnectLimit, VenueProtocol

EXCHANGE = "coinbase"
_MAKER_SIDE = {"buy": "sell", "sell": "buy"}  # the wire's side is the maker's: the taker's opposite


# frames --------------------------------------------------------------------------------


def sequence_of(trade_id: int) -> int:
    return 3 * trade_id


def order_ids(trade_id: int) -> tuple[str, str]:
    """(maker, taker) order ids of a simulated match: UUID-shaped, unique per trade."""
    return f"5a4e0000-0000-4000-8000-{trade_id:012x}", f"7a4e0000-0000-4000-9000-{trade_id:012x}"


def match(t: SimTrade, kind: str = "match") -> str:
    maker, taker = order_ids(t.trade_id)
    return (
        f'{{"type":"{kind}","trade_id":{t.trade_id},"sequence":{sequence_of(t.trade_id)},'
        f'"maker_order_id":"{maker}","taker_order_id":"{taker}","time":"{rfc3339(t.ts_us)}",'
        f'"product_id":"{t.symbol}","size":"{t.qty}","price":"{t.price}","side":"{_MAKER_SIDE[t.taker]}"}}'
    )


def heartbeat(product: str, last_trade_id: int, now: int) -> str:
    return (f'{{"type":"heartbeat","sequence":{sequence_of(last_trade_id) + 1},"last_trade_id":{last_trade_id},'
            f'"product_id":"{product}","time":"{rfc3339(now)}"}}')


def subscriptions(channels: Mapping[str, set[str]]) -> str:
    return json.dumps({"type": "subscriptions", "channels": [
        {"name": name, "product_ids": sorted(products)} for name, products in channels.items() if products]})


def error(message: str, reason: str) -> str:
    return json.dumps({"type": "error", "message": message, "reason": reason})


def bad(kind: str, t: SimTrade) -> str:
    """One of :data:`~workers.simulator.protocols.BAD_FRAME_KINDS`, made from a real trade's frame."""
    return malformed(kind, match(t), (f'"price":"{t.price}"', f'"price":"{t.price}123456789"'),
                     (f'"product_id":"{t.symbol}"', '"product_id":"NOPE-USD"'))


# REST ----------------------------------------------------------------------------------
#
# ``GET /products/{id}/trades[?after=A|before=B][&limit=L]`` answers the ``L`` (default and
# most 1000) trades with id < A (``after``: older), > B (``before``: newer, the ``L``
# right above B), or the most recent ones, always listed newest first, with the page's
# newest id in ``CB-BEFORE`` and its oldest in ``CB-AFTER``. Errors are
# ``{"message": ...}``: 404 NotFound for an unknown product, 400 for a bad parameter.

TRADES_PREFIX = "/products/"


def rest_trade(t: SimTrade) -> dict[str, Any]:
    return {"time": rfc3339(t.ts_us), "trade_id": t.trade_id, "price": t.price, "size": t.qty,
            "side": _MAKER_SIDE[t.taker]}


def rest_error(status: int, message: str) -> RestReply:
    return RestReply(status, json.dumps({"message": message}))


def rate_limited() -> RestReply:
    return rest_error(429, "Public rate limit exceeded")


def rest_trades(path: str, query: Mapping[str, list[str]], tape: Tape) -> RestReply:
    """Answer one trades GET from ``tape`` (pure)."""
    product, _, tail = path.removeprefix(TRADES_PREFIX).partition("/")
    if not path.startswith(TRADES_PREFIX) or tail != "trades":
        return rest_error(404, "route not found")
    if product not in tape.archive:
        return rest_error(404, "NotFound")
    try:
        limit = int((query.get("limit") or [str(REST_PAGE_MAX)])[0])
        after = int(query["after"][0]) if "after" in query else None
        before = int(query["before"][0]) if "before" in query else None
    except ValueError:
        return rest_error(400, "Invalid pagination parameter")
    if not 1 <= limit <= REST_PAGE_MAX:
        return rest_error(400, f"limit must be between 1 and {REST_PAGE_MAX}")
    archive = tape.archive[product]
    if not archive:
        return RestReply(200, "[]")
    oldest, newest = archive[0].trade_id, archive[-1].trade_id
    if after is not None:
        top = min(after - 1, newest)
        first = max(oldest, top - limit + 1)
    elif before is not None:
        first = max(oldest, before + 1)
        top = min(newest, first + limit - 1)
    else:
        top = newest
        first = max(oldest, top - limit + 1)
    trades = tape.since(product, first, top - first + 1)[::-1] if top >= first else []
    body = json.dumps([rest_trade(t) for t in trades], separators=(",", ":"))
    headers = {"CB-BEFORE": str(trades[0].trade_id), "CB-AFTER": str(trades[-1].trade_id)} if trades else {}
    return RestReply(200, body, headers, trades)


def products(listings: Mapping[str, Listing]) -> RestReply:
    """``GET /products``: every listing, as Coinbase describes a product."""
    items = [{
        "id": item.symbol, "base_currency": item.base, "quote_currency": item.quote, "quote_increment": "0.01",
        "base_increment": "0.00000001", "display_name": f"{item.base}/{item.quote}", "min_market_funds": "1",
        "margin_enabled": False, "post_only": False, "limit_only": False, "cancel_only": False,
        "status": "online" if item.trading else "offline", "status_message": "",
        "trading_disabled": not item.trading, "fx_stablecoin": False, "max_slippage_percentage": "0.03",
        "auction_mode": False, "high_bid_limit_percentage": "",
    } for item in listings.values()]
    return RestReply(200, json.dumps(items, separators=(",", ":")))


# session -------------------------------------------------------------------------------


class CoinbaseSession(Session):
    exchange = EXCHANGE

    def __init__(self, sim: Any, conn: Any, conn_id: int, query: Mapping[str, list[str]] | None = None):
        super().__init__(sim, conn, conn_id)
        self.channels: dict[str, set[str]] = {name: set() for name in CHANNELS}
        self.subscribed = self.channels["matches"]  # what offer() sends

    @property
    def tape(self) -> Tape:
        return self.sim.tapes[EXCHANGE]

    def bad_frame(self, kind: str, t: SimTrade) -> str:
        return bad(kind, t)

    async def on_open(self) -> None:
        self.sim.spawn(self._deadline())
        self.sim.spawn(self._heartbeats())

    async def _deadline(self) -> None:
        await asyncio.sleep(SUBSCRIBE_DEADLINE_S)
        if not any(self.channels.values()):
            await self.close(1008, f"no subscribe within {SUBSCRIBE_DEADLINE_S:g} s")

    async def _heartbeats(self) -> None:
        while not self.closed:
            await asyncio.sleep(self.cfg.heartbeat_s)
            if not self.stalled():
                self.send_heartbeats(now_us())

    def send_heartbeats(self, now: int) -> None:
        for product in sorted(self.channels["heartbeat"]):
            self.write(heartbeat(product, self.tape.next_id[product] - 1, now))

    async def on_message(self, message: str) -> None:
        self.handle(message)

    def handle(self, message: str) -> None:
        """One client message (synchronous, so it is unit-tested without a loop)."""
        if self.sim.client_messages[EXCHANGE].over():  # per IP: counts every connection's
            self.write(error("Failed to subscribe", f"more than {CLIENT_MESSAGES_PER_S} client messages a second"))
            self.sim.spawn(self.refuse("client_messages_per_second",
                                       f"more than {CLIENT_MESSAGES_PER_S} client messages in 1 s"))
            return
        try:
            req = json.loads(message)
            kind = req["type"]
        except (ValueError, KeyError, TypeError):
            self.write(error("Malformed JSON", f"cannot read {message[:100]!r}"))
            return
        if kind not in ("subscribe", "unsubscribe"):
            self.write(error(f"Failed to {kind}", f"{kind!r} is not a valid message type"))
            return
        wanted = self._wanted(req)
        if isinstance(wanted, str):
            self.write(error(f"Failed to {kind}", wanted))
            return
        full = self._over_subscribed(wanted) if kind == "subscribe" else None
        if full is not None:
            self.sim.over_limit(EXCHANGE, self.id, "subscriptions_per_product", full)
            self.write(error("Failed to subscribe", full))
            return
        fresh = wanted.get("matches", set()) - self.channels["matches"]
        for name, products in wanted.items():
            if kind == "subscribe":
                self.channels[name] |= products
            else:
                self.channels[name] -= products
        self.write(subscriptions(self.channels))
        if kind == "subscribe" and not self.stalled():
            for product in sorted(fresh):
                history = self.tape.history[product]
                if history and self.write(match(history[-1], "last_match")):
                    self.sent(history[-1], "snapshot")  # a trade like any other for the client

    def _over_subscribed(self, wanted: dict[str, set[str]]) -> str | None:
        """Why a subscribe would take a product and channel past its subscriptions over all
        connections (:data:`SAME_SUBSCRIPTIONS_MAX`), or None."""
        others = [s for s in self.sim.sessions(EXCHANGE) if s is not self]
        for name, products in wanted.items():
            for product in sorted(products - self.channels[name]):
                held = sum(product in other.channels[name] for other in others)
                if held >= SAME_SUBSCRIPTIONS_MAX:
                    return (f"{product} {name}: {held} subscriptions already, the most is "
                            f"{SAME_SUBSCRIPTIONS_MAX} per product and channel")
        return None

    def _wanted(self, req: dict) -> dict[str, set[str]] | str:
        """{channel: products} a (un)subscribe names, or the reason it is rejected. Channels
        are names (using the top-level ``product_ids``) or ``{"name", "product_ids"}``."""
        top = req.get("product_ids") or []
        wanted: dict[str, set[str]] = {}
        for channel in req.get("channels") or []:
            name, products = (channel, top) if isinstance(channel, str) else (
                (channel.get("name"), channel.get("product_ids") or top) if isinstance(channel, dict) else (None, []))
            if name not in self.channels:
                return f"{name} is not a valid channel"
            if not products:
                return f"You need to specify at least one product ID for channel {name}"
            for product in products:
                if product not in self.tape.listed:
                    return f"{product} is not a valid product"
            wanted.setdefault(name, set()).update(products)
        return wanted or "No channels provided"

    def trade_frame(self, t: SimTrade) -> str:
        return match(t)

    def wire_time(self, t: SimTrade) -> tuple[object, str]:
        return rfc3339(t.ts_us), "rfc3339"


class CoinbaseProtocol(VenueProtocol):
    name = EXCHANGE
    session = CoinbaseSession
    ws_paths = ("/ws-feed",)  # the real feed is a host's root, which the simulator gives Binance
    rest_prefix = PRODUCTS_PATH  # /products (metadata) and /products/{id}/trades
    metadata_path = PRODUCTS_PATH
    separator = "-"
    price_decimals = 2  # BTC-USD's quote_increment 0.01
    connect_limit = ConnectLimit(CONNECTS_PER_S, CONNECTS_BURST, "8 requests a second per IP, bursts up to 20")
    client_messages_per_s = CLIENT_MESSAGES_PER_S
    quotes = ("USD", "USDC", "EUR", "USDT", "BTC")

    def metadata(self, query: Mapping[str, list[str]]) -> RestReply:
        return products(self.listings)

    def rest(self, path: str, query: Mapping[str, list[str]], headers: Mapping[str, str]) -> RestReply:
        return rest_trades(path, query, self.tape)

    def rate_limited(self, retry_after_s: int) -> RestReply:
        return rate_limited()
