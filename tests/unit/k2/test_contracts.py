"""Names every runtime shares."""

from __future__ import annotations

import pytest

from k2 import contracts


def test_topics_and_subjects():
    # One topic per registered venue, named after it (the registry's list, in its order).
    assert contracts.trade_topics()[:2] == ["market.crypto.trades.binance", "market.crypto.trades.kraken"]
    assert contracts.trade_topics() == [f"market.crypto.trades.{v.name}" for v in contracts.EXCHANGES]
    assert contracts.DLQ_TOPIC == "market.crypto.trades.dlq"
    assert contracts.value_subject("market.crypto.trades.kraken") == "market.crypto.trades.kraken-value"
    assert contracts.exchange_of_topic("market.crypto.trades.binance") == "binance"
    with pytest.raises(ValueError):
        contracts.exchange_of_topic(contracts.DLQ_TOPIC)


def test_tables():
    silver = [f"silver_{v.name}_trades" for v in contracts.EXCHANGES]
    assert silver[:2] == ["silver_binance_trades", "silver_kraken_trades"]
    assert contracts.all_tables() == ["bronze_crypto_trades", *silver, "silver_dlq", "gold_crypto_trades"]
    assert contracts.lakehouse_tables() == [*contracts.all_tables(), "completeness_ledger",
                                            "completeness_unrecoverable", "completeness_possible_loss"]
    assert contracts.qualified("gold_crypto_trades", "k2") == "k2.market_data.gold_crypto_trades"


def test_unknown_exchange_lists_known_ones():
    with pytest.raises(KeyError, match="binance, kraken"):
        contracts.trade_topic("nope")


def test_schema_exchange_enum_matches_exchange_list():
    schema = contracts.trade_schema()
    enum = next(f for f in schema["fields"] if f["name"] == "exchange")["type"]["symbols"]
    assert enum == [e.enum_symbol for e in contracts.EXCHANGES]
