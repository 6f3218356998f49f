"""OKX v5 spot ``trades-all`` channel (business WebSocket), with REST gap backfill.

A frame on ``wss://ws.okx.com:8443/ws/v5/business`` after subscribing::

    {"arg":{"channel":"trades-all","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT",
     "tradeId":"130639474","px":"42219.9","sz":"0.12060306","side":"buy","source":"0",
     "ts":"1630048897897"}]}

One trade per push (every fill), ``side`` is the taker's, ``px``/``sz`` are decimal
strings (``sz`` in the base currency for spot), ``ts`` is ms as a string and
``tradeId`` an integer id as a string, consecutive per instrument. ``source`` is the
order source (``0`` normal, ``1`` Enhanced Liquidity Program), kept as
``vendor_data.order_source``. The public ``trades`` channel would aggregate the fills of
one taker order at one price into one push (``tradeId`` = the last id, ``count`` fills);
``trades-all`` is used instead so a record is one fill, its id is the REST history's id
and an id jump is a gap (docs/exchanges/okx.md says why).

Control frames: ``{"event":"subscribe","arg":{...},"connId":...}`` (ack, one per
argument), ``{"event":"error","code":"60018","msg":...}`` (60018: unknown channel or
instrument), ``{"event":"notice","code":"64008",...}`` about 60 s before a service
upgrade closes the connection, and the text ``pong`` answering our text ``ping``: OKX
closes a connection that pushed nothing for 30 s, so the client pings when idle.

Missed trades come from REST ``GET /api/v5/market/history-trades?instId=&type=1&after=``
(ids below ``after``, newest first, at most 100; three months of history), whose items
have the stream's fields: the record is the stream's (same message_id) with
``vendor_data.source = "rest"``.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import msgspec

from workers.base import ConnectionLimits, Control, Exchange, Parsed, Rate
from workers.batches import convert_item
from workers.jsonframe import DECODE_ERRORS, as_bytes, decode, decode_rest_body
from workers.normalize import (
    NormalizeError,
    clip,
    decimal_18_8,
    epoch_int_to_us,
    trade_id_text,
    trade_record,
)
from workers.progress import Gap
from workers.rest_source import Answer, IdPagedTrades, RestPage, Throttled
from workers.shard_plan import plan_shards
from workers.symbols import Pair, listed_pairs

WS_URL = "wss://ws.okx.com:8443/ws/v5/business"  # trades-all is served on /business only
REST_URL = "https://www.okx.com"
CHANNEL = "trades-all"
HISTORY_TRADES = "/api/v5/market/history-trades"
RECENT_TRADES = "/api/v5/market/trades"
INSTRUMENTS = "/api/v5/public/instruments"

# Limits from https://www.okx.com/docs-v5/en/#overview-websocket-connect and -subscribe:
SUBSCRIBE_MAX_BYTES = 64 * 1024  # "the total length of multiple channels cannot exceed 64 KB"
SUBSCRIBE_REQUESTS_PER_HOUR = 480  # subscribe/unsubscribe/login requests per connection
CONNECTS_PER_SECOND = 3  # new connections per IP
IDLE_CLOSE_S = 30.0  # OKX closes a connection that pushed nothing for this long (close code 4004)
PING_INTERVAL_S = 20.0  # our text 'ping' period: "N seconds, where N is less than 30"
# OKX documents no number of instruments per connection, only close codes 4008/4009 when
# "the number of subscribed channels exceeds the limit". K2's choice for sharding: small
# enough that one lost connection loses few symbols and one subscribe message holds them all.
MAX_SYMBOLS_PER_CONNECTION = 200
LIMITS = ConnectionLimits(per_connection=MAX_SYMBOLS_PER_CONNECTION,
                          messages=Rate(SUBSCRIBE_REQUESTS_PER_HOUR, 3600.0),
                          connects=Rate(CONNECTS_PER_SECOND, 1.0))

# REST (https://www.okx.com/docs-v5/en/#order-book-trading-market-data-get-trades-history):
HISTORY_MAX_LIMIT = 100  # "the maximum and default both are 100"
MIN_INTERVAL_S = 0.1  # history-trades: 20 requests per 2 seconds per IP
RATE_LIMITED_WAIT_S = 2.0  # the rate window; code 50011 answers carry no Retry-After
RATE_LIMITED = "50011"
SERVICE_UPGRADE = "64008"
UNKNOWN_CHANNEL = "60018"

_SIDES = {"buy": "BUY", "sell": "SELL"}
MAX_ID_DIGITS = 19  # 2**63 - 1 has 19 digits; longer text is never a 64-bit id
MAX_MS_DIGITS = 16  # 9999-12-31 is 15 digits of ms


class _Trade(msgspec.Struct):
    """A ``trades-all`` item; REST history items have the same fields."""

    instId: str  # noqa: N815 - OKX's field names
    tradeId: str  # noqa: N815
    px: str
    sz: str
    side: str
    ts: str
    source: str = ""


class _Arg(msgspec.Struct):
    channel: Literal["trades-all"]
    instId: str = ""  # noqa: N815


class _Push(msgspec.Struct):
    arg: _Arg
    data: list[_Trade]


class _RestAnswer(msgspec.Struct):
    code: Literal["0"]
    data: list[_Trade]
    msg: str = ""


_decode_push = msgspec.json.Decoder(_Push).decode
_decode_rest = msgspec.json.Decoder(_RestAnswer).decode
_decode_any = msgspec.json.Decoder().decode


class Okx(Exchange):
    name = "okx"
    enum_symbol = "OKX"
    sends_heartbeats = False  # idle instruments push nothing; the pong to our ping is not data
    sequential_ids = True  # trades-all tradeId is consecutive per instrument
    backfills = True  # REST history-trades, paged by tradeId (OkxTrades)
    default_urls = (WS_URL,)
    urls_doc = ("OKX v5 business WebSocket URLs (trades-all is served there only), comma separated, tried in "
                "order on failure (failover).")
    default_symbols = ("BTC-USDT", "ETH-USDT", "SOL-USDT", "XRP-USDT", "DOGE-USDT", "ETH-BTC")
    symbols_doc = ("OKX spot instruments to capture as BASE-QUOTE (upper case, e.g. BTC-USDT; must be in "
                   "workers/exchanges/okx_symbols.json or the instruments metadata).")
    default_rest_url = REST_URL
    rest_url_doc = ("OKX REST base URL: spot instruments metadata at start and gap backfill "
                    "(/api/v5/market/history-trades, at most 10 requests a second).")
    ping_interval_s = PING_INTERVAL_S  # OKX closes a connection idle for 30 s
    simulator_protocol = "workers.simulator.venues.okx"
    limits = LIMITS

    def normalize_symbol(self, symbol: str) -> str:
        return symbol.upper()

    @classmethod
    def metadata_url(cls, rest_url: str, symbols: Iterable[str]) -> str:
        return f"{rest_url}{INSTRUMENTS}?instType=SPOT"

    @classmethod
    def pairs_from_metadata(cls, doc: Mapping) -> list[Pair]:
        return pairs_from_instruments(doc)

    def stream_url(self, endpoint: str, symbols: Sequence[str] | None = None) -> str:
        return endpoint  # the business endpoint itself; instruments are subscribed by message

    def subscribe_messages(self, symbols: Sequence[str] | None = None) -> list[str]:
        return subscribe_messages(self.symbols if symbols is None else symbols)

    def unsubscribe_messages(self, symbols: Sequence[str]) -> list[str]:
        return subscribe_messages(symbols, op="unsubscribe")

    def ping_message(self, req_id: int) -> str | None:
        return "ping"  # OKX's keepalive is this text, not JSON and not a WebSocket ping frame

    def parse(self, frame: str | bytes, received_us: int) -> Parsed:
        try:
            push = _decode_push(frame)
        except DECODE_ERRORS:  # a control frame, an odd item, or not JSON: the slow path says
            return self._parse_other(frame, received_us)
        return self._items(push.data, received_us)

    def _items(self, items: Sequence[object], received_us: int) -> Parsed:
        """Item by item, so one bad trade in a push does not drop its neighbours."""
        parsed = Parsed()
        for index, item in enumerate(items):
            try:
                parsed.trades.append(self._record(_as_trade(item), received_us))
            except NormalizeError as exc:
                parsed.rejects.append(NormalizeError(exc.kind, f"data[{index}]: {exc}"))
        return parsed

    def _record(self, trade: _Trade, received_us: int, rest: bool = False) -> dict:
        pair = self.known_pair(trade.instId)
        side = _SIDES.get(trade.side)
        if side is None:
            raise NormalizeError("bad_trade", f"side {clip(trade.side)!r} is neither 'buy' nor 'sell'")
        vendor_data = {"order_source": clip(trade.source)} if trade.source else {}
        if rest:
            vendor_data["source"] = "rest"
        return trade_record(
            exchange_enum="OKX",
            pair=pair,
            trade_id=trade_id_text(_digits(trade.tradeId, "tradeId", MAX_ID_DIGITS, "bad_trade"), "tradeId"),
            timestamp_us=epoch_int_to_us(_digits(trade.ts, "ts", MAX_MS_DIGITS, "bad_timestamp"), 1000, "ts"),
            price=decimal_18_8(trade.px, "px"),
            quantity=decimal_18_8(trade.sz, "sz"),
            side=side,
            ingestion_us=received_us,
            vendor_data=vendor_data,
        )

    def _parse_other(self, frame: str | bytes, received_us: int) -> Parsed:
        """Slow path: the text pong, event frames, and pushes with at least one odd item."""
        if as_bytes(frame) == b"pong":
            return Parsed(control=Control("pong"))
        doc = decode(_decode_any, frame)
        if not isinstance(doc, dict):
            raise NormalizeError("unexpected_frame", f"expected a JSON object, got {type(doc).__name__}")
        event = doc.get("event")
        if event is not None:
            return Parsed(control=_event(event, doc))
        arg = doc.get("arg")
        channel = arg.get("channel") if isinstance(arg, dict) else None
        if channel == CHANNEL and isinstance(doc.get("data"), list):
            return self._items(doc["data"], received_us)
        raise NormalizeError("unexpected_frame", f"not a {CHANNEL} push (channel={clip(channel)})")

    # REST -----------------------------------------------------------------------------

    def parse_rest_trades(self, body: bytes, symbol: str, received_us: int) -> RestPage:
        """A history-trades/trades answer for ``symbol`` (pure). Raises ``rest_error`` for a
        non-zero ``code`` and ``bad_rest_response`` for anything not such an answer."""
        try:
            items: list = _decode_rest(body).data
        except DECODE_ERRORS:  # an error code, an odd item, or not JSON
            items = _rest_items(body)
        page = RestPage()
        for item in items:
            tid = item.tradeId if isinstance(item, _Trade) else item.get("tradeId") if isinstance(item, dict) else None
            if isinstance(tid, str) and 0 < len(tid) <= MAX_ID_DIGITS and tid.isascii() and tid.isdigit():
                page.ids.append(int(tid))  # a rejected item's id still moves paging on
            try:
                trade = _as_trade(item)
                if trade.instId != symbol:
                    raise NormalizeError("bad_trade", f"instId {clip(trade.instId)!r} is not the requested {clip(symbol)!r}")
                page.records.append(self._record(trade, received_us, rest=True))
            except NormalizeError as exc:
                page.rejects.append((exc, msgspec.json.encode(item)))
        return page

    def rest_source(self, rest_url: str, page_limit: int) -> OkxTrades:
        return OkxTrades(self, rest_url, page_limit)


def _as_trade(item: object) -> _Trade:
    if isinstance(item, _Trade):
        return item
    return convert_item(item, _Trade, f"trade does not match the {CHANNEL} format")


def _digits(text: object, field: str, max_digits: int, kind: str) -> int:
    """A non-negative integer OKX sends as decimal text (ids, ms times)."""
    if not isinstance(text, str) or not (0 < len(text) <= max_digits and text.isascii() and text.isdigit()):
        raise NormalizeError(kind, f"{field} {clip(text)!r} is not an integer of at most {max_digits} digits")
    return int(text)


def _event(event: object, doc: dict) -> Control:
    code, msg = clip(doc.get("code", "")), clip(doc.get("msg", ""), 200)
    arg = doc.get("arg") if isinstance(doc.get("arg"), dict) else {}
    if event in ("subscribe", "unsubscribe"):
        return Control("ack", f"{event} {clip(arg.get('channel'))} {clip(arg.get('instId'))}")
    if event == "error":
        kind = "subscribe_error" if code == UNKNOWN_CHANNEL else "exchange_error"
        return Control(kind, f"code={code} msg={msg}")
    if event == "notice":
        return Control("server_shutdown" if code == SERVICE_UPGRADE else "status", f"code={code} msg={msg}")
    if event == "channel-conn-count":
        return Control("status", f"{clip(doc.get('channel'))} connections={clip(doc.get('connCount'))}")
    if event == "channel-conn-count-error":
        return Control("exchange_error", f"{clip(doc.get('channel'))} over the connection limit "
                                         f"({clip(doc.get('connCount'))})")
    raise NormalizeError("unexpected_frame", f"unknown event {clip(event)!r}")


def _rest_items(body: bytes) -> list:
    doc = decode_rest_body(_decode_any, body, dict, "OKX REST body")
    code = doc.get("code")
    if code != "0":
        raise NormalizeError("rest_error", f"code={clip(code)} msg={clip(doc.get('msg'), 200)}")
    data = doc.get("data")
    if not isinstance(data, list):
        raise NormalizeError("bad_rest_response", f"OKX REST data is not a list: {clip(data)}")
    return data


def subscribe_messages(symbols: Sequence[str], op: str = "subscribe") -> list[str]:
    """``trades-all`` subscribe (or ``op``) requests for ``symbols``, each within OKX's 64 KB."""
    messages: list[str] = []
    args: list[str] = []
    size = 0  # bytes of the message holding ``args``

    def text(batch: list[str]) -> str:
        return f'{{"id":"{len(messages) + 1}","op":"{op}","args":[{",".join(batch)}]}}'

    for symbol in symbols:
        arg = json.dumps({"channel": CHANNEL, "instId": symbol}, separators=(",", ":"))
        if args and size + 1 + len(arg.encode()) > SUBSCRIBE_MAX_BYTES:
            messages.append(text(args))
            args = []
        args.append(arg)
        size = len(text(args).encode()) if len(args) == 1 else size + 1 + len(arg.encode())
    if args:
        messages.append(text(args))
    return messages


def connection_shards(symbols: Sequence[str], per_connection: int = MAX_SYMBOLS_PER_CONNECTION) -> list[list[str]]:
    """``symbols`` split into groups of at most ``per_connection``, one connection each."""
    return plan_shards(symbols, lambda symbol: 1, per_connection)


class OkxTrades(IdPagedTrades):
    """``GET /api/v5/market/history-trades?instId=S&type=1&after=A&limit=L``: the trades with
    id below ``after``, newest first. Ids are consecutive, so asking ``after = next_id + L``
    with ``limit = L`` lists exactly ``[next_id, next_id + L)``: the gap is paged upwards
    like Binance's ``fromId``. Over the rate limit OKX answers 429, or code 50011."""

    min_interval_s = MIN_INTERVAL_S
    max_page = HISTORY_MAX_LIMIT
    throttle_statuses = {429: RATE_LIMITED_WAIT_S}
    exchange: Okx

    def request(self, gap: Gap, next_id: int, cursor: object) -> tuple[str, dict[str, str]]:
        limit = self.page_size(gap, next_id)
        query = urllib.parse.urlencode({"instId": gap.symbol, "type": 1, "after": next_id + limit, "limit": limit})
        return f"{self.rest_url}{HISTORY_TRADES}?{query}", {}

    def latest_request(self, symbol: str) -> tuple[str, dict[str, str]]:
        return f"{self.rest_url}{RECENT_TRADES}?{urllib.parse.urlencode({'instId': symbol, 'limit': 1})}", {}

    def rejected(self, exc: NormalizeError) -> Answer:
        if exc.kind == "rest_error" and str(exc).startswith(f"code={RATE_LIMITED} "):
            return Throttled(RATE_LIMITED_WAIT_S, f"rest_error: {exc}")
        return super().rejected(exc)


# symbols -------------------------------------------------------------------------------


def pairs_from_instruments(doc: Mapping, states: Sequence[str] = ("live",)) -> list[Pair]:
    """Spot pairs from a ``GET /api/v5/public/instruments?instType=SPOT`` answer (pure):
    ``instId`` as sent on the wire, ``baseCcy``/``quoteCcy``, only instruments in ``states``."""
    if not isinstance(doc, Mapping) or doc.get("code") != "0":
        code, msg = (doc.get("code"), doc.get("msg")) if isinstance(doc, Mapping) else (None, clip(doc))
        raise ValueError(f"OKX instruments error: code={clip(code)!r} msg={clip(msg)!r}")
    return listed_pairs(doc, "data", "OKX instruments", ("instId", "baseCcy", "quoteCcy"),
                        lambda info: info.get("instType") == "SPOT" and info.get("state") in states)
