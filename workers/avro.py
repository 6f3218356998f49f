"""Avro encoding of v3 trades in the Confluent wire format, fast enough for the hot path.

Wire format: magic byte ``0``, the 4-byte big-endian registry schema id, then the Avro
binary body. The body encoder below is specialised to ``trade_v3.avsc`` (field order
is checked against the schema file at construction) because the generic
``fastavro.schemaless_writer`` costs about twice as much per record; unit tests assert
byte equality with fastavro and round-trips through confluent-kafka's
``AvroDeserializer``.
"""

from __future__ import annotations

import struct
from decimal import Decimal

EXPECTED_FIELDS = (
    "message_id",
    "trade_id",
    "symbol",
    "exchange",
    "timestamp",
    "price",
    "quantity",
    "base_asset",
    "quote_currency",
    "side",
    "ingestion_timestamp",
    "vendor_data",
)
_SCALE = Decimal(10) ** 8
_UUID_LENGTH = b"\x48"  # zigzag varint of 36, the length of every message_id


def _zigzag_unsigned(z: int) -> bytes:
    """Varint of an already zigzag-encoded (non-negative) value."""
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _zigzag_varint(n: int) -> bytes:
    """Avro ``long``: zigzag, then 7 bits a byte."""
    return _zigzag_unsigned((n << 1) ^ (n >> 63))


_SMALL_LONGS = [_zigzag_varint(i) for i in range(-64, 64)]
# 14-bit groups as two varint bytes with the continuation bit set on both.
_PAIRS = [bytes(((i & 0x7F) | 0x80, (i >> 7) | 0x80)) for i in range(1 << 14)]
_high_cache: dict[int, bytes] = {}


def encode_long(n: int) -> bytes:
    if -64 <= n < 64:
        return _SMALL_LONGS[n + 64]
    if 0 < n < 1 << 62:
        # Timestamps: the low 28 bits change every record, the rest almost never, so
        # the low part comes from a table and the high part from a small cache.
        z = n << 1
        high = z >> 28
        if high:
            tail = _high_cache.get(high)
            if tail is None:
                tail = _zigzag_unsigned(high)
                if len(_high_cache) < 4096:
                    _high_cache[high] = tail
            return _PAIRS[z & 0x3FFF] + _PAIRS[(z >> 14) & 0x3FFF] + tail
    return _zigzag_varint(n)


def encode_string(s: str) -> bytes:
    raw = s.encode()
    return encode_long(len(raw)) + raw


def encode_decimal(value: Decimal, scale: int = 8) -> bytes:
    """Avro bytes-decimal: two's-complement big-endian unscaled value, length-prefixed.

    ``value`` must already be exact at ``scale`` (normalize guarantees it); the
    multiplication is exact, so ``int()`` truncates nothing.
    """
    unscaled = int(value * _SCALE) if scale == 8 else int(value.scaleb(scale))
    raw = unscaled.to_bytes((unscaled.bit_length() + 8) // 8, "big", signed=True)
    size = len(raw)  # at most 8 for decimal(18,8): its prefix is one table byte
    return (_SMALL_LONGS[size + 64] if size < 64 else encode_long(size)) + raw


class TradeEncoder:
    """v3 record dict -> Confluent-framed Avro bytes, for one registered schema id."""

    def __init__(self, schema: dict, schema_id: int):
        names = tuple(f["name"] for f in schema["fields"])
        if names != EXPECTED_FIELDS:
            raise ValueError(f"trade schema fields changed ({names}); update workers/avro.py to match")
        enums = {f["name"]: f["type"]["symbols"] for f in schema["fields"] if isinstance(f["type"], dict) and f["type"]["type"] == "enum"}
        self._exchange = {sym: encode_long(i) for i, sym in enumerate(enums["exchange"])}
        self._side = {sym: encode_long(i) for i, sym in enumerate(enums["side"])}
        self._header = b"\x00" + struct.pack(">I", schema_id)
        self.schema_id = schema_id
        # Symbols, assets and vendor keys repeat endlessly: encode each once.
        self._strings: dict[str, bytes] = {}

    def _cached(self, s: str) -> bytes:
        encoded = self._strings.get(s)
        if encoded is None:
            encoded = encode_string(s)
            if len(self._strings) < 10_000:
                self._strings[s] = encoded
        return encoded

    def encode(self, record: dict) -> bytes:
        cached = self._cached
        message_id = record["message_id"].encode()
        trade_id = record["trade_id"].encode()
        parts = [
            self._header,
            _UUID_LENGTH if len(message_id) == 36 else encode_long(len(message_id)),
            message_id,
            encode_long(len(trade_id)),
            trade_id,
            cached(record["symbol"]),
            self._exchange[record["exchange"]],
            encode_long(record["timestamp"]),
            encode_decimal(record["price"]),
            encode_decimal(record["quantity"]),
            cached(record["base_asset"]),
            cached(record["quote_currency"]),
            self._side[record["side"]],
            encode_long(record["ingestion_timestamp"]),
        ]
        vendor = record["vendor_data"]
        if vendor:
            parts.append(encode_long(len(vendor)))
            for key, value in vendor.items():
                parts.append(cached(key))
                parts.append(encode_string(value))
        parts.append(b"\x00")  # end of map blocks
        return b"".join(parts)


def _read_long(buf: bytes, pos: int) -> tuple[int, int]:
    """(value, next position) of the zigzag varint at ``pos``."""
    shift = z = 0
    while True:
        byte = buf[pos]
        pos += 1
        z |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (z >> 1) ^ -(z & 1), pos
        shift += 7


def trade_id_of(value: bytes) -> str:
    """The trade_id of an encoded record, read without decoding the rest: message_id and
    trade_id are the first two fields, so delivery callbacks can tell which trade Kafka
    acknowledged for the cost of two varints."""
    length, pos = _read_long(value, 5)  # after the magic byte and the schema id
    length, pos = _read_long(value, pos + length)
    return value[pos : pos + length].decode()
