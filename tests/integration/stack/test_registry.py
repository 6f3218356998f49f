"""The schema registry speaks Confluent's API: confluent-kafka's own client and serdes."""

from __future__ import annotations

import json

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from k2.contracts import trade_schema_text
from workers.exchanges.binance import Binance
from workers.symbols import SymbolTable

pytestmark = pytest.mark.integration

# The record the Binance worker makes of one recorded trade frame: what the registry carries.
FRAME = ('{"stream":"btcusdt@trade","data":{"e":"trade","E":1767225600125,"s":"BTCUSDT",'
         '"t":5123456789,"p":"94250.01000000","q":"0.00210000","T":1767225600120,"m":true,"M":true}}')
(TRADE,) = Binance(["BTCUSDT"], SymbolTable.shipped(), microseconds=False).parse(FRAME, 1767225600130000).trades


def test_v3_round_trip_with_confluent_serializers(stack, run_id):
    client = SchemaRegistryClient({"url": stack.registry_url})
    topic = f"k2test.registry.{run_id}"
    ctx = SerializationContext(topic, MessageField.VALUE)
    payload = AvroSerializer(client, trade_schema_text())(TRADE, ctx)

    assert payload[0] == 0  # Confluent wire format: magic byte, then a 4-byte schema id
    schema_id = int.from_bytes(payload[1:5], "big")
    registered = client.get_latest_version(f"{topic}-value")
    assert registered.schema_id == schema_id
    assert json.loads(client.get_schema(schema_id).schema_str)["name"] == "CryptoTradeV3"

    decoded = AvroDeserializer(client)(payload, ctx)
    assert decoded == TRADE


def test_backward_compatibility_is_enforced(stack, run_id):
    client = SchemaRegistryClient({"url": stack.registry_url})
    subject = f"k2test.compat.{run_id}-value"
    v1 = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}]}
    client.register_schema(subject, Schema(json.dumps(v1), "AVRO"))
    client.set_compatibility(subject, "BACKWARD")

    with_default = {**v1, "fields": v1["fields"] + [{"name": "b", "type": "string", "default": ""}]}
    assert client.test_compatibility(subject, Schema(json.dumps(with_default), "AVRO"))
    client.register_schema(subject, Schema(json.dumps(with_default), "AVRO"))

    # A new required field without a default cannot read old data: rejected.
    breaking = {**v1, "fields": v1["fields"] + [{"name": "c", "type": "string"}]}
    with pytest.raises(SchemaRegistryError):
        client.register_schema(subject, Schema(json.dumps(breaking), "AVRO"))
    assert len(client.get_versions(subject)) == 2
