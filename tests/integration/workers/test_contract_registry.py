"""The v3 contract in the real registry: BACKWARD compatibility is enforced."""

from __future__ import annotations

import copy
import json
import uuid

import pytest

from k2 import contracts
from k2.schema_registry import Schema, register_trade_schema

pytestmark = pytest.mark.integration


@pytest.fixture
def subject_topic(stack):
    topic = f"it-{uuid.uuid4().hex[:8]}.market.crypto.trades.binance"
    yield topic
    for permanent in (False, True):
        try:
            stack["registry"].delete_subject(contracts.value_subject(topic), permanent=permanent)
        except Exception:  # noqa: BLE001 - absent
            pass


def test_registration_is_idempotent_and_backward(stack, subject_topic):
    client = stack["registry"]
    first = register_trade_schema(client, subject_topic)
    assert register_trade_schema(client, subject_topic) == first
    subject = contracts.value_subject(subject_topic)
    assert client.get_compatibility(subject) == "BACKWARD"
    latest = client.get_latest_version(subject)
    assert latest.schema_id == first
    assert json.loads(latest.schema.schema_str)["name"] == "CryptoTradeV3"


def test_adding_an_exchange_is_compatible_removing_a_field_is_not(stack, subject_topic):
    client = stack["registry"]
    register_trade_schema(client, subject_topic)
    subject = contracts.value_subject(subject_topic)

    evolved = copy.deepcopy(contracts.trade_schema())
    exchange_field = next(f for f in evolved["fields"] if f["name"] == "exchange")
    exchange_field["type"]["symbols"].append("NEWVENUE")  # a venue not registered yet
    assert client.test_compatibility(subject, Schema(json.dumps(evolved), "AVRO"))

    broken = copy.deepcopy(contracts.trade_schema())
    broken["fields"].append({"name": "venue_seq", "type": "long", "doc": "no default: breaks old data"})
    assert not client.test_compatibility(subject, Schema(json.dumps(broken), "AVRO"))
