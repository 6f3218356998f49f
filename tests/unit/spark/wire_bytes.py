"""Hand-built Confluent wire frames and v3 Avro bodies, any field value allowed.

Written from the Avro spec (zig-zag varints, length-prefixed strings and bytes,
two's-complement decimals, block-encoded maps), not with the code under test, so a
test can produce what no serializer would: a 20-byte decimal, Long.MIN timestamps,
an enum index out of range, a length prefix of 2 GB. ``test_silver_decode`` checks it
agrees with fastavro on ordinary records.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime

LONG_MIN, LONG_MAX = -(1 << 63), (1 << 63) - 1
KAFKA_TS = datetime(2026, 1, 1, tzinfo=UTC)
EXCHANGES = ("BINANCE", "KRAKEN")  # the v3 Exchange enum, in order
SIDES = ("BUY", "SELL")
FIELDS = ("message_id", "trade_id", "symbol", "exchange", "timestamp", "price", "quantity",
          "base_asset", "quote_currency", "side", "ingestion_timestamp", "vendor_data")


def varint(n: int) -> bytes:
    """Avro ``long``: zig-zag, then 7 bits a byte (any Python int in the long range)."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        b, z = z & 0x7F, z >> 7
        if z:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def text(s: str | bytes) -> bytes:
    raw = s.encode() if isinstance(s, str) else s
    return varint(len(raw)) + raw


def decimal_bytes(unscaled: int) -> bytes:
    """Minimal big-endian two's complement (what Avro's decimal logical type stores)."""
    size = max(1, (unscaled.bit_length() + 8) // 8)
    return text(unscaled.to_bytes(size, "big", signed=True))


def string_map(values: dict[str, str]) -> bytes:
    if not values:
        return varint(0)
    return varint(len(values)) + b"".join(text(k) + text(v) for k, v in values.items()) + varint(0)


def v3_body(fields: dict) -> bytes:
    """A v3 body. Decimals are given as unscaled ints (scale 8), enums as indexes."""
    f = fields
    return b"".join([
        text(f["message_id"]), text(f["trade_id"]), text(f["symbol"]), varint(f["exchange"]),
        varint(f["timestamp"]), decimal_bytes(f["price"]), decimal_bytes(f["quantity"]),
        text(f["base_asset"]), text(f["quote_currency"]), varint(f["side"]),
        varint(f["ingestion_timestamp"]), string_map(f["vendor_data"]),
    ])


def frame(schema_id: int, body: bytes, magic: int = 0) -> bytes:
    """Magic byte, then the id's low 32 bits big-endian (so -1 and 2**32-1 are one header)."""
    return bytes([magic]) + struct.pack(">I", schema_id & 0xFFFFFFFF) + body


def header_reason(value: bytes | None, good_id: int) -> str | None:
    """The DLQ reason a frame must get from its first 5 bytes alone (None: decided later),
    when ``good_id`` is the only schema id that decodes."""
    if value is None or len(value) < 5:
        return "truncated_frame"
    if value[0] != 0:
        return "bad_magic_byte"
    if int.from_bytes(value[1:5], "big") != good_id:
        return "unknown_schema_id"
    return None


def good_fields(exchange: str, n: int, ts_us: int) -> dict:
    """A valid trade of ``exchange`` ('binance' or 'kraken') whose message_id names row n."""
    symbol, base, quote = ("BTCUSDT", "BTC", "USDT") if exchange == "binance" else ("BTC/USD", "BTC", "USD")
    return {
        "message_id": f"row-{n}", "trade_id": str(1000 + n), "symbol": symbol,
        "exchange": EXCHANGES.index(exchange.upper()), "timestamp": ts_us,
        "price": 6_500_012_345_678, "quantity": 100_000, "base_asset": base, "quote_currency": quote,
        "side": n % 2, "ingestion_timestamp": ts_us + 1500, "vendor_data": {"n": str(n)},
    }


def kafka_row(topic: str, value: bytes | None, offset: int) -> tuple:
    """A Bronze row: key, value, topic, partition, offset, kafka_timestamp."""
    return (b"k", value, topic, 0, offset, KAFKA_TS)


BRONZE_DDL = "key binary, value binary, topic string, partition int, offset bigint, kafka_timestamp timestamp"
