"""Bybit v5 spot ``publicTrade.{symbol}`` topics.

A frame on ``wss://stream.bybit.com/v5/public/spot`` after subscribing::

    {"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1767225600125,"data":[
     {"i":"2290000000908760214","T":1767225600120,"p":"94250.1","v":"0.0021","S":"Sell",
      "seq":87416325577,"s":"BTCUSDT","BT":false,"RPI":false}]}

``S`` is the taker's side (``Buy``/``Sell``), ``p``/``v`` decimal strings, ``T`` the fill
time in ms, ``i`` the trade id: a string, numeric for spot (UUIDs are the derivatives'
form, rejected here). One message batches up to 1,024 trades of one symbol, ordered by
match time; ``BT`` flags a block trade, ``RPI`` a Retail Price Improvement fill, ``seq``
the matching sequence (shared by the fills of one match). All of them, and the message
time ``ts``, are kept in ``vendor_data``.

Control frames (``{success, ret_msg, conn_id, req_id, op}``): the subscribe answer, with
``success:false`` for an unknown topic (``error:handler not found,topic:...``), and the
answer to our application ping ``{"op":"ping"}``, whose ``ret_msg`` is ``pong``. The
server sends no heartbeat and no shutdown notice: an idle symbol is silent, and a client
that neither pings nor gets data for 10 minutes is cut off, so we ping every 20 s.

No gap backfill: the REST ``/v5/market/recent-trade`` serves only the latest 60 spot
trades, with no id or time cursor; and Bybit does not document spot trade ids as
consecutive per symbol, so a jump is not treated as a gap (docs/exchanges/bybit.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence

import msgspec

from workers.base import ConnectionLimits, Control, Exchange, Parsed, Rate
from workers.batches import convert_item, parse_items
from workers.jsonframe import DECODE_ERRORS, decode
from workers.normalize import (
    NormalizeError,
    clip,
    decimal_18_8,
    epoch_int_to_us,
    trade_id_text,
    trade_record,
)
from workers.shard_plan import plan_shards
from workers.symbols import Pair

WS_URL = "wss://stream.bybit.com/v5/public/spot"
REST_URL = "https://api.bybit.com"
INSTRUMENTS_INFO = "/v5/market/instruments-info"  # ?category=spot: every spot pair, no paging
TOPIC_PREFIX = "publicTrade."

# Subscription limits of a public connection, https://bybit-exchange.github.io/docs/v5/ws/connect
# ("Public channel - Args limits"): spot takes at most 10 topics per subscribe request, and
# the topics of one connection may total at most 21,000 characters ("length of args array").
MAX_TOPICS_PER_SUBSCRIBE = 10
MAX_ARGS_CHARS_PER_CONNECTION = 21_000
# Connection limits, same page ("IP Limits") and https://bybit-exchange.github.io/docs/v5/rate-limit
# ("Websocket IP limit"): at most 500 new connections per 5 minutes per domain, and at
# most 1,000 market-data connections per IP, counted per market (spot apart).
MAX_CONNECTIONS_PER_5_MIN = 500
MAX_SPOT_CONNECTIONS_PER_IP = 1_000
# Keepalive, https://bybit-exchange.github.io/docs/v5/ws/connect ("How to Send the Heartbeat
# Packet"): ping every 20 s; with neither ping-pong nor data the server cuts after 10 minutes.
PING_INTERVAL_S = 20.0
IDLE_CUTOFF_S = 600.0
# The planner's view of them: one symbol costs its quoted topic and a comma (the first
# one's: the opening bracket) of the 21,000 characters, so a connection carries 20,999.
# Bybit documents no rate for subscribe requests; sending 10 a second is K2's choice.
LIMITS = ConnectionLimits(per_connection=MAX_ARGS_CHARS_PER_CONNECTION - 1, messages=Rate(10, 1.0),
                          connects=Rate(MAX_CONNECTIONS_PER_5_MIN, 300.0),
                          max_connections=MAX_SPOT_CONNECTIONS_PER_IP)
# https://bybit-exchange.github.io/docs/v5/websocket/public/trade: "a single message may
# have up to 1024 trades" (a bigger match is split across messages with the same seq).
MAX_TRADES_PER_MESSAGE = 1024

_SIDES = {"Buy": "BUY", "Sell": "SELL"}
_NUMERIC_ID = re.compile(r"[0-9]{1,19}")  # bounded: int() of a hostile 10,000-digit id is slow


class _Trade(msgspec.Struct):
    T: int
    s: str
    S: str
    v: str
    p: str
    i: str
    BT: bool = False
    RPI: bool | None = None  # newer field; absent from older frames
    seq: int | None = None


class _TradeFrame(msgspec.Struct):
    topic: str
    ts: int
    data: list[_Trade]
    type: str = "snapshot"


_decode_trade_frame = msgspec.json.Decoder(_TradeFrame).decode
_decode_any = msgspec.json.Decoder().decode


def topic(symbol: str) -> str:
    return TOPIC_PREFIX + symbol


def args_chars(symbols: Iterable[str]) -> int:
    """Length of the ``args`` array the topics of ``symbols`` make, as JSON text: what
    Bybit's 21,000-character limit of a connection counts (read conservatively)."""
    return len(json.dumps([topic(s) for s in symbols], separators=(",", ":")))


def topic_weight(symbol: str) -> int:
    """Characters ``symbol`` adds to a connection's args array: its quoted topic and a comma."""
    return len(json.dumps(topic(symbol))) + 1


def connection_shards(symbols: Sequence[str]) -> list[list[str]]:
    """``symbols`` split, in order, into the fewest groups one connection each may subscribe."""
    return plan_shards(symbols, topic_weight, LIMITS.per_connection)


class Bybit(Exchange):
    name = "bybit"
    enum_symbol = "BYBIT"
    sends_heartbeats = False  # only pongs, which prove the socket, not the data (stalls)
    sequential_ids = False  # not documented as consecutive per symbol (docs/exchanges/bybit.md)
    backfills = False  # recent-trade has no cursor: nothing to page a gap from
    default_urls = (WS_URL,)
    urls_doc = "Bybit v5 public spot WebSocket URLs, comma separated, tried in order on failure (failover)."
    default_symbols = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "ETHBTC")
    symbols_doc = ("Bybit spot symbols to capture (upper case, no separator, e.g. BTCUSDT; must be in "
                   "workers/exchanges/bybit_symbols.json or the instruments-info metadata).")
    default_rest_url = REST_URL
    rest_url_doc = ("Bybit REST base URL: spot instruments-info metadata at start (Bybit has no trade "
                    "history to backfill gaps from).")
    ping_interval_s = PING_INTERVAL_S
    simulator_protocol = "workers.simulator.venues.bybit"
    limits = LIMITS

    @classmethod
    def symbol_weight(cls, symbol: str) -> int:
        return topic_weight(symbol)

    def normalize_symbol(self, symbol: str) -> str:
        return symbol.upper()

    @classmethod
    def metadata_url(cls, rest_url: str, symbols: Iterable[str]) -> str:
        return instruments_url(rest_url)

    @classmethod
    def pairs_from_metadata(cls, doc: Mapping) -> list[Pair]:
        return pairs_from_instruments_info(doc)

    def stream_url(self, endpoint: str, symbols: Sequence[str] | None = None) -> str:
        return endpoint  # the category is the path (/v5/public/spot); topics are subscribed

    def subscribe_messages(self, symbols: Sequence[str] | None = None) -> list[str]:
        return _requests("subscribe", self.symbols if symbols is None else list(symbols))

    def unsubscribe_messages(self, symbols: Sequence[str]) -> list[str]:
        return _requests("unsubscribe", list(symbols))

    def ping_message(self, req_id: int) -> str | None:
        return json.dumps({"op": "ping", "req_id": f"ping-{req_id}"})

    def parse(self, frame: str | bytes, received_us: int) -> Parsed:
        try:
            message = _decode_trade_frame(frame)
        except DECODE_ERRORS:  # a control frame, an odd trade item, or not JSON: the slow path says
            return self._parse_other(frame, received_us)
        if not message.topic.startswith(TOPIC_PREFIX):
            raise NormalizeError("unexpected_frame", f"topic {clip(message.topic)!r} is not a publicTrade topic")
        return parse_items(message.data, lambda trade: self._record(trade, message.ts, received_us))

    def _record(self, trade: _Trade, ts: int, received_us: int) -> dict:
        pair = self.known_pair(trade.s)
        side = _SIDES.get(trade.S)
        if side is None:
            raise NormalizeError("bad_trade", f"taker side S {clip(trade.S)!r} is neither 'Buy' nor 'Sell'")
        if _NUMERIC_ID.fullmatch(trade.i) is None:
            raise NormalizeError("bad_trade", f"trade id i {clip(trade.i)!r} is not a spot trade id (1-19 digits)")
        vendor = {"event_time_us": str(epoch_int_to_us(ts, 1000, "ts")), "block_trade": _text(trade.BT)}
        if trade.RPI is not None:
            vendor["rpi"] = _text(trade.RPI)
        if trade.seq is not None:
            vendor["seq"] = str(trade.seq)
        return trade_record(
            exchange_enum="BYBIT",
            pair=pair,
            trade_id=trade_id_text(int(trade.i), "trade id i"),
            timestamp_us=epoch_int_to_us(trade.T, 1000, "T"),
            price=decimal_18_8(trade.p, "price p"),
            quantity=decimal_18_8(trade.v, "size v"),
            side=side,
            ingestion_us=received_us,
            vendor_data=vendor,
        )

    def _parse_other(self, frame: str | bytes, received_us: int) -> Parsed:
        """Slow path: control frames, and trade frames with at least one odd item."""
        doc = decode(_decode_any, frame)
        if not isinstance(doc, dict):
            raise NormalizeError("unexpected_frame", f"expected a JSON object, got {type(doc).__name__}")
        if "op" in doc:
            return Parsed(control=_op_answer(doc))
        name = doc.get("topic")
        if isinstance(name, str) and name.startswith(TOPIC_PREFIX) and isinstance(doc.get("data"), list):
            return self._parse_items(doc, received_us)
        if doc.get("success") is False:
            return Parsed(control=Control("exchange_error", f"ret_msg={clip(doc.get('ret_msg'))}"))
        raise NormalizeError("unexpected_frame", f"unknown message (topic={clip(name)}, keys={clip(sorted(doc)[:6])})")

    def _parse_items(self, doc: dict, received_us: int) -> Parsed:
        """Item by item, so one bad trade in a batch does not drop its neighbours."""
        ts = doc.get("ts")
        if type(ts) is not int:
            raise NormalizeError("bad_trade", f"message time ts {clip(ts)} is not an integer of ms")
        return parse_items(doc["data"], lambda item: self._record(convert_item(item, _Trade, "trade does not match the publicTrade format"), ts, received_us))



def _requests(op: str, symbols: list[str]) -> list[str]:
    """``{"op":"subscribe","args":[...]}`` per :data:`MAX_TOPICS_PER_SUBSCRIBE` topics."""
    return [
        json.dumps({"op": op, "args": [topic(s) for s in symbols[at : at + MAX_TOPICS_PER_SUBSCRIBE]],
                    "req_id": f"trade-{n}" if op == "subscribe" else f"{op}-{n}"})
        for n, at in enumerate(range(0, len(symbols), MAX_TOPICS_PER_SUBSCRIBE), 1)
    ]


def _text(flag: bool) -> str:
    return "true" if flag else "false"


def _op_answer(doc: dict) -> Control:
    """The answer to one of our requests: ``{success, ret_msg, conn_id, req_id, op}``."""
    op, ret_msg, success = doc.get("op"), doc.get("ret_msg"), doc.get("success")
    detail = f"op={clip(op)} req_id={clip(doc.get('req_id', ''))} ret_msg={clip(ret_msg)}"
    if op in ("ping", "pong") or ret_msg == "pong":  # public spot answers op "ping"; private "pong"
        return Control("pong", detail)
    if success is True:
        return Control("ack", detail)
    if op == "subscribe":
        return Control("subscribe_error", detail)
    return Control("exchange_error", detail)


# symbol metadata -------------------------------------------------------------------


def instruments_url(rest_url: str) -> str:
    return f"{rest_url.rstrip('/')}{INSTRUMENTS_INFO}?category=spot"


def pairs_from_instruments_info(doc: Mapping) -> list[Pair]:
    """Trading pairs from a ``/v5/market/instruments-info?category=spot`` answer (pure).

    Raises ``ValueError`` naming what is wrong for an error answer (``retCode`` not 0) or a
    body that is not a spot instruments list; instruments not ``Trading`` are left out.
    """
    if not isinstance(doc, Mapping):
        raise ValueError(f"Bybit instruments-info answer is not a JSON object: {clip(doc)}")
    if doc.get("retCode") != 0:
        raise ValueError(f"Bybit instruments-info error: retCode={clip(doc.get('retCode'))} "
                         f"retMsg={clip(doc.get('retMsg'))}")
    result = doc.get("result")
    if not isinstance(result, Mapping) or result.get("category") != "spot" or not isinstance(result.get("list"), list):
        raise ValueError(f"Bybit instruments-info answer is not a spot list: {clip(result)}")
    pairs = []
    for item in result["list"]:
        fields = [item.get(k) for k in ("symbol", "baseCoin", "quoteCoin")] if isinstance(item, Mapping) else []
        if len(fields) != 3 or not all(isinstance(f, str) and f for f in fields):
            raise ValueError(f"Bybit instrument without symbol/baseCoin/quoteCoin: {clip(item)}")
        if item.get("status") == "Trading":
            pairs.append(Pair(*fields))
    return pairs
