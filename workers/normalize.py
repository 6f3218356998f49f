"""Pure normalization to the v3 trade record: ids, decimals, timestamps, sides.

Nothing here does I/O. Every rejection raises :class:`NormalizeError` whose ``kind``
names the DLQ error kind and whose message says what was wrong with which input.
"""

from __future__ import annotations

import decimal
import re
from datetime import UTC, datetime
from decimal import Decimal
from hashlib import sha1
from typing import TYPE_CHECKING
from uuid import UUID

from k2.errors import K2Error

if TYPE_CHECKING:
    from workers.symbols import Pair

# Fixed forever: changing it would change every message_id and break deduplication.
MESSAGE_ID_NAMESPACE = UUID("6f1c2b1e-5d0a-5b8e-9c3e-4b2a7f0d1e93")

PRICE_SCALE = 8
INTEGER_DIGITS = 18 - PRICE_SCALE
_QUANTUM = Decimal(1).scaleb(-PRICE_SCALE)
_LIMIT = Decimal(10) ** INTEGER_DIGITS
# Traps turn "would round" and "too big to represent" into exceptions instead of results.
_EXACT = decimal.Context(prec=60, traps=[decimal.Inexact, decimal.InvalidOperation])
# JSON-style number text; Decimal() alone would also take "NaN", " 1", "1_000" and other
# scripts' digits ("\u0663"), which no venue means as a price.
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?", re.ASCII)
# The text nearly every trade's price and size arrive as: no sign, no exponent, at most
# 10 integer digits and 8 places. Such a value fits decimal(18,8) by its shape alone, so
# it skips the checks (half of this function's cost, a worker's hottest path) and is
# quantized under a plain 18+ digit context, which cannot round it.
_PLAIN_IN_RANGE = re.compile(
    rf"(?:0|[1-9]\d{{0,{INTEGER_DIGITS - 1}}})(?:\.\d{{1,{PRICE_SCALE}}})?", re.ASCII
)
_PLAIN_CONTEXT = decimal.Context(prec=28)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US_PER_S = 1_000_000
# The record's times are Avro longs of µs since the epoch; 9999-12-31 (datetime's last
# day) bounds them far below 2**63, and no trade happened before 1970.
MAX_TIMESTAMP_US = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - _EPOCH) // datetime.resolution


class NormalizeError(K2Error, ValueError):
    """A frame or trade that cannot become a v3 record; ``kind`` is the DLQ error kind."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


# message_id ----------------------------------------------------------------------

_NAMESPACE_BYTES = MESSAGE_ID_NAMESPACE.bytes
# RFC 4122 variant bits (10xx) applied to the first hex digit of the clock_seq field.
_VARIANT = {h: format((int(h, 16) & 0x3) | 0x8, "x") for h in "0123456789abcdef"}


def message_id(exchange_enum: str, symbol: str, trade_id: str) -> str:
    """UUIDv5 of ``<EXCHANGE>:<symbol>:<trade_id>``; equal to ``uuid.uuid5`` (tested), faster."""
    h = sha1(_NAMESPACE_BYTES + f"{exchange_enum}:{symbol}:{trade_id}".encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


# decimals ------------------------------------------------------------------------


def decimal_18_8(value: str | Decimal | int, field: str) -> Decimal:
    """Exact decimal(18,8) value of ``value`` (wire text or a Decimal parsed from JSON text).

    Raises ``bad_decimal`` for non-numbers and ``decimal_out_of_range`` for values with
    more than 8 decimal places or more than 10 integer digits: never rounds.
    """
    if isinstance(value, str):
        if _PLAIN_IN_RANGE.fullmatch(value) is not None:
            return Decimal(value).quantize(_QUANTUM, context=_PLAIN_CONTEXT)
        if _NUMBER.fullmatch(value) is None:
            raise NormalizeError("bad_decimal", f"{field} {clip(value)!r} is not a decimal number")
        try:
            number = Decimal(value)
        except decimal.InvalidOperation:  # an exponent beyond what any Decimal holds
            raise NormalizeError(
                "decimal_out_of_range", f"{field} {clip(value)} is beyond any decimal's exponent range"
            ) from None
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, int) and not isinstance(value, bool):
        number = Decimal(value)
    else:
        raise NormalizeError(
            "bad_decimal", f"{field} {clip(value)} ({type(value).__name__}) is not a decimal number"
        )
    if not number.is_finite():
        raise NormalizeError("bad_decimal", f"{field} {value!r} is not a finite number")
    try:
        exact = number.quantize(_QUANTUM, context=_EXACT)
    except decimal.Inexact:
        raise NormalizeError(
            "decimal_out_of_range",
            f"{field} {clip(str(value))} has more than {PRICE_SCALE} decimal places; "
            "decimal(18,8) cannot hold it without rounding",
        ) from None
    except decimal.InvalidOperation:
        exact = _LIMIT  # too many digits to quantize at all: reported as too large below
    if abs(exact) >= _LIMIT:
        raise NormalizeError(
            "decimal_out_of_range",
            f"{field} {clip(str(value))} has more than {INTEGER_DIGITS} integer digits; "
            "decimal(18,8) cannot hold it",
        )
    return exact


def clip(value: object, limit: int = 80) -> str:
    """Short text of an untrusted wire value for an error or a control detail: hostile
    frames carry strings and numbers thousands of characters long."""
    try:
        text = value if isinstance(value, str) else repr(value)
    except ValueError:  # an int past Python's digit limit for str()
        text = f"<{type(value).__name__} too long to show>"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


# trade ids -----------------------------------------------------------------------

MAX_TRADE_ID = 2**63 - 1  # venues' ids are 64-bit; gap tracking does arithmetic on them


def trade_id_text(value: int, field: str) -> str:
    """The record's trade_id text of a venue's integer id; out-of-range ids are rejected."""
    if not 0 <= value <= MAX_TRADE_ID:
        raise NormalizeError("bad_trade", f"{field} {clip(str(value))} is not a non-negative 64-bit trade id")
    return str(value)


# timestamps ----------------------------------------------------------------------


def epoch_int_to_us(value: object, unit_us: int, field: str) -> int:
    """Integer epoch time in a unit of ``unit_us`` microseconds (1000 for ms) -> µs."""
    if type(value) is not int or value < 0:
        raise NormalizeError("bad_timestamp", f"{field} {clip(value)} is not a non-negative integer time")
    us = value * unit_us
    if us > MAX_TIMESTAMP_US:
        raise NormalizeError("bad_timestamp", f"{field} {clip(value)} is beyond year 9999")
    return us


_second_cache: dict[str, int] = {}


def rfc3339_to_us(text: object, field: str = "timestamp") -> int:
    """RFC 3339 text (``2026-01-01T00:00:00.123456Z``) -> µs since epoch, UTC.

    More than 6 fraction digits (ns) are truncated to µs: sub-µs time is below the
    contract's resolution. The whole-second part is cached because consecutive trades
    share it.
    """
    if not isinstance(text, str):
        raise NormalizeError("bad_timestamp", f"{field} {clip(text)} is not an RFC 3339 string")
    if len(text) > 20 and text[-1] == "Z" and text[19] == ".":
        head, fraction = text[:19], text[20:-1]
        seconds = _second_cache.get(head)
        if seconds is None:
            seconds = _parse_seconds(head, text, field)
        if fraction.isdigit() and fraction.isascii():
            return _in_record_range(seconds * _US_PER_S + int(fraction[:6].ljust(6, "0")), text, field)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise NormalizeError("bad_timestamp", f"{field} {clip(text)!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise NormalizeError("bad_timestamp", f"{field} {clip(text)!r} has no UTC offset")
    return _in_record_range((parsed - _EPOCH) // _ONE_US, text, field)


def _in_record_range(us: int, text: str, field: str) -> int:
    if not 0 <= us <= MAX_TIMESTAMP_US:
        raise NormalizeError("bad_timestamp", f"{field} {clip(text)!r} is before 1970 or after 9999")
    return us


_ONE_US = datetime.resolution  # timedelta(microseconds=1)


def _parse_seconds(head: str, text: str, field: str) -> int:
    try:
        parsed = datetime.fromisoformat(head)
    except ValueError:
        raise NormalizeError("bad_timestamp", f"{field} {clip(text)!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is not None:  # an offset inside the first 19 characters, then ".fracZ"
        raise NormalizeError("bad_timestamp", f"{field} {clip(text)!r} has two UTC offsets")
    parsed = parsed.replace(tzinfo=UTC)
    seconds = int((parsed - _EPOCH).total_seconds())
    if len(_second_cache) > 4096:  # bounded: a long-running worker sees new seconds forever
        _second_cache.clear()
    _second_cache[head] = seconds
    return seconds


# record --------------------------------------------------------------------------


def trade_record(
    *,
    exchange_enum: str,
    pair: Pair,
    trade_id: str,
    timestamp_us: int,
    price: Decimal,
    quantity: Decimal,
    side: str,
    ingestion_us: int,
    vendor_data: dict[str, str],
) -> dict:
    """The v3 record as a dict keyed by the schema's field names; symbol, base asset and
    quote currency are ``pair``'s."""
    return {
        "message_id": message_id(exchange_enum, pair.symbol, trade_id),
        "trade_id": trade_id,
        "symbol": pair.symbol,
        "exchange": exchange_enum,
        "timestamp": timestamp_us,
        "price": price,
        "quantity": quantity,
        "base_asset": pair.base,
        "quote_currency": pair.quote,
        "side": side,
        "ingestion_timestamp": ingestion_us,
        "vendor_data": vendor_data,
    }
