"""What cleanup_migrations may remove: legacy names yes, v3 and unrelated names never."""

from __future__ import annotations

import pytest

from k2 import contracts
from k2_airflow import legacy


@pytest.mark.parametrize("subject", [
    "com.k2.marketdata.Trade-value",
    "com.k2.marketdata.Quote-value",
    "market.equities.trades.asx-value",
    "market.equities.quotes-value",
    "trades_v1-value",
    "market.crypto.quotes.v2-value",
    "com.k2.marketdata.TradeV1-value",
    "equity_ticks-value",
    "ASX.trades-value",
])
def test_legacy_subjects(subject):
    assert legacy.is_legacy_subject(subject)


@pytest.mark.parametrize("subject", [
    *(contracts.value_subject(t) for t in contracts.trade_topics()),
    contracts.value_subject(contracts.DLQ_TOPIC),
    "rt.test-value",
    "com.k2.marketdata.CryptoTradeV3-value",
    "market.crypto.trades.v10-value",
    "dev1-value",
    "tasx-value",
])
def test_not_legacy_subjects(subject):
    assert not legacy.is_legacy_subject(subject)


def test_topics():
    assert legacy.is_legacy_topic("market.equities.trades.asx")
    assert not legacy.is_legacy_topic(contracts.DLQ_TOPIC)
    assert not any(legacy.is_legacy_topic(t) for t in contracts.trade_topics())
    assert not legacy.is_legacy_topic("market.crypto.trades.asx_is_not_a_prefix")


def test_tables():
    assert all(legacy.is_legacy_table(t) for t in contracts.LEGACY_TABLES)
    assert not any(legacy.is_legacy_table(t) for t in contracts.lakehouse_tables())
