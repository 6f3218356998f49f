"""What cleanup_migrations may remove: the explicit legacy list, never v3 or look-alikes."""

from __future__ import annotations

import pytest

from k2 import contracts
from k2_airflow import legacy

# Every legacy name the seeds' Phase 10 cleanup (steps 01-03) names, by kind.
SEED_TABLES = ["trades_v1", "trades_v2", "quotes_v1", "quotes_v2"]
SEED_SUBJECTS = [
    "com.k2.marketdata.Trade-value",  # step 02, v1 trade.avsc
    "com.k2.marketdata.Quote-value",  # step 02, v1 quote.avsc
    "market.equities.trades.asx-value",  # step 02
    "market.equities.quotes.asx-value",  # the equities.asx topics of step 01
    "market.equities.reference_data.asx-value",
]
SEED_TOPICS = [
    "market.equities.trades.asx",  # step 01: the equities.asx section of topics.yaml
    "market.equities.quotes.asx",
    "market.equities.reference_data.asx",
]
SEEDS = {"table": SEED_TABLES, "subject": SEED_SUBJECTS, "topic": SEED_TOPICS}

# Names that look legacy (v1, v2, equity, ASX, the old prefixes) but are not on the list:
# another application's, or ours but never named by the seeds. None may ever be selected.
LOOK_ALIKES = {
    "subject": [
        "equity-other-app-value", "myapp.v1-value", "trades_v1-value", "market.crypto.quotes.v2-value",
        "com.k2.marketdata.TradeV1-value", "ASX.trades-value", "market.equities.quotes-value",
        "market.equities.trades.asx.t1234-value", "com.k2.marketdata.Trade-key", "com.k2.marketdata.Trade",
        " com.k2.marketdata.Trade-value", "COM.K2.MARKETDATA.TRADE-VALUE",
    ],
    "topic": [
        "market.equities.trades", "market.equities.trades.asx.t1234", "market.equities.trades.nyse",
        "myapp.equities.v1", "asx", "MARKET.EQUITIES.TRADES.ASX", "market.crypto.trades.asx_is_not_a_prefix",
    ],
    "table": ["trades_v3", "trades_v1_backup", "equity_trades", "TRADES_V1", "market_data.trades_v1"],
}
V3 = {
    "table": contracts.lakehouse_tables(),
    "subject": [contracts.value_subject(t) for t in [*contracts.trade_topics(), contracts.DLQ_TOPIC]],
    "topic": [*contracts.trade_topics(), contracts.DLQ_TOPIC],
}


def test_the_list_is_exactly_the_seed_named_estate():
    assert {kind: sorted(names) for kind, names in legacy.LEGACY.items()} == \
        {kind: sorted(names) for kind, names in SEEDS.items()}
    assert legacy.LEGACY_TABLES == tuple(contracts.LEGACY_TABLES)  # one definition, shared with Spark


@pytest.mark.parametrize(("kind", "name"), [(k, n) for k, names in SEEDS.items() for n in names])
def test_each_seed_named_item_is_selected(kind, name):
    assert legacy.is_legacy(kind, name)
    assert legacy.select(kind, [name, "unrelated"]) == [name]


@pytest.mark.parametrize(("kind", "name"), [(k, n) for k, names in LOOK_ALIKES.items() for n in names]
                         + [(k, n) for k, names in V3.items() for n in names])
def test_look_alikes_and_v3_names_are_never_selected(kind, name):
    assert not legacy.is_legacy(kind, name)
    assert legacy.select(kind, [name]) == []


def test_select_keeps_only_listed_names_of_a_mixed_registry():
    present = [*LOOK_ALIKES["subject"], *V3["subject"], "com.k2.marketdata.Quote-value"]
    assert legacy.select("subject", present) == ["com.k2.marketdata.Quote-value"]


def test_a_v3_name_on_the_list_is_refused():
    with pytest.raises(RuntimeError, match="live v3 objects"):
        legacy.check_disjoint({**legacy.LEGACY, "topic": (*legacy.LEGACY_TOPICS, contracts.DLQ_TOPIC)})
    with pytest.raises(RuntimeError, match="gold_crypto_trades"):
        legacy.check_disjoint({**legacy.LEGACY, "table": ("gold_crypto_trades",)})
    legacy.check_disjoint()  # the real list passes


def test_no_pattern_matching_is_left():
    """Rules by regular expression selected foreign subjects (issue 16); the module keeps none."""
    import inspect

    assert "import re" not in inspect.getsource(legacy)
