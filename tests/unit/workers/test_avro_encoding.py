"""The specialised encoder must be byte-identical to fastavro and decodable by
confluent-kafka's AvroDeserializer (what Spark and consumers rely on)."""

import io
import random
import struct
from decimal import Decimal

import fastavro
import pytest
from confluent_kafka.serialization import MessageField, SerializationContext

from k2 import contracts
from k2.schema_registry import Schema, registry_client
from workers.avro import TradeEncoder

SCHEMA = contracts.trade_schema()


def random_record(rng: random.Random) -> dict:
    def dec() -> Decimal:
        return Decimal(rng.randint(-(10**18) + 1, 10**18 - 1)).scaleb(-8)

    return {
        "message_id": "674774fa-a967-5477-a629-af0b3d460f45",
        "trade_id": str(rng.randint(0, 2**63)),
        "symbol": rng.choice(["BTCUSDT", "BTC/USD", "DOGE/EUR", "ÆØÅ/€"]),
        "exchange": rng.choice([v.enum_symbol for v in contracts.EXCHANGES]),
        "timestamp": rng.randint(0, 2**62),
        "price": rng.choice([dec(), Decimal("0E-8"), Decimal("0.00000001"), Decimal("-0.00000128")]),
        "quantity": dec(),
        "base_asset": "BTC",
        "quote_currency": "USDT",
        "side": rng.choice(["BUY", "SELL"]),
        "ingestion_timestamp": rng.randint(-(2**63), 2**63 - 1),
        "vendor_data": rng.choice([{}, {"ord_type": "market", "type": "snapshot"}, {"k": "v" * 300}]),
    }


def fastavro_bytes(record: dict) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(SCHEMA), record)
    return buf.getvalue()


def test_body_is_byte_identical_to_fastavro():
    rng = random.Random(7)
    encoder = TradeEncoder(SCHEMA, schema_id=42)
    for _ in range(2000):
        record = random_record(rng)
        framed = encoder.encode(record)
        assert framed[:5] == b"\x00" + struct.pack(">I", 42)
        body = framed[5:]
        assert fastavro.schemaless_reader(io.BytesIO(body), fastavro.parse_schema(SCHEMA), None) == record
        # fastavro writes minimal two's-complement decimals; ours may differ only there,
        # so compare bytes on records whose decimals are non-negative
        if record["price"] >= 0 and record["quantity"] >= 0:
            assert body == fastavro_bytes(record)


def test_confluent_avro_deserializer_decodes_our_wire_format():
    from confluent_kafka.schema_registry.avro import AvroDeserializer

    client = registry_client("mock://workers-unit")
    topic = "market.crypto.trades.kraken"
    schema_id = client.register_schema(contracts.value_subject(topic), Schema(contracts.trade_schema_text(), "AVRO"))
    encoder = TradeEncoder(SCHEMA, schema_id)
    deserializer = AvroDeserializer(client)
    record = random_record(random.Random(3))
    decoded = deserializer(encoder.encode(record), SerializationContext(topic, MessageField.VALUE))
    assert decoded == record


def test_schema_drift_is_caught():
    drifted = {**SCHEMA, "fields": SCHEMA["fields"][::-1]}
    with pytest.raises(ValueError, match="update workers/avro.py"):
        TradeEncoder(drifted, 1)


def test_schema_contract():
    assert SCHEMA["namespace"] + "." + SCHEMA["name"] == "com.k2.marketdata.CryptoTradeV3"
    assert all(f.get("doc") for f in SCHEMA["fields"])
    types = {f["name"]: f["type"] for f in SCHEMA["fields"]}
    # Symbols are only ever appended (BACKWARD): records of the first two venues keep decoding.
    assert types["exchange"]["symbols"][:2] == ["BINANCE", "KRAKEN"]
    assert "default" not in types["exchange"]
    assert types["side"]["symbols"] == ["BUY", "SELL"]
    assert types["timestamp"] == "long" and types["ingestion_timestamp"] == "long"
    for name in ("price", "quantity"):
        assert types[name] == {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 8}
    assert types["vendor_data"] == {"type": "map", "values": "string"}


def test_long_encoding_matches_reference_varint_everywhere():
    from workers.avro import _zigzag_varint, encode_long

    rng = random.Random(11)
    edges = [0, 1, -1, 63, 64, -64, -65, 127, 128, 2**27 - 1, 2**27, 2**28, 2**62 - 1, 2**62, 2**63 - 1, -(2**63)]
    samples = edges + [rng.randint(-(2**63), 2**63 - 1) for _ in range(20000)]
    samples += [rng.randint(1_700_000_000_000_000, 1_900_000_000_000_000) for _ in range(20000)]
    for n in samples:
        assert encode_long(n) == _zigzag_varint(n), n


def test_trade_id_is_read_back_from_the_encoded_value():
    from workers.avro import trade_id_of

    rng = random.Random(3)
    encoder = TradeEncoder(SCHEMA, 7)
    for _ in range(200):
        record = random_record(rng)
        assert trade_id_of(encoder.encode(record)) == record["trade_id"]
