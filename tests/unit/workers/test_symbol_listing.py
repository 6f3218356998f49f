"""``K2_<EXCHANGE>_SYMBOLS=all``: every venue's full metadata answer parsed into the pairs
currently trading (recorded-format fixtures), and a listing that cannot be read named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.exchanges import exchange_class
from workers.symbols import ListingUnavailableError, Pair, fetch_listing

FRAMES = Path(__file__).with_name("frames")


def fixture(path: str) -> object:
    return json.loads((FRAMES / path).read_text())


def test_binance_lists_trading_spot_symbols_only():
    pairs = exchange_class("binance").trading_pairs(fixture("binance_meta/exchange_info.json"))
    # BCCBTC is in BREAK, HALTUSDT halted, MARGINONLYBTC not tradable on spot.
    assert pairs == [Pair("ETHBTC", "ETH", "BTC"), Pair("BTCUSDT", "BTC", "USDT"),
                     Pair("1000SATSUSDT", "1000SATS", "USDT")]


def test_kraken_lists_pairs_whose_books_match_with_normalized_names():
    pairs = exchange_class("kraken").trading_pairs(fixture("kraken_meta/asset_pairs.json"))
    # cancel_only and post_only books match no trade; limit_only and reduce_only do.
    assert pairs == [Pair("BTC/USD", "BTC", "USD"), Pair("DOGE/EUR", "DOGE", "EUR"),
                     Pair("ETH/USDC", "ETH", "USDC"), Pair("SOL/USD", "SOL", "USD")]


def test_coinbase_lists_online_products_with_trading_enabled():
    pairs = exchange_class("coinbase").trading_pairs(fixture("coinbase/products.json"))
    # OLD-USD is delisted, HALT-USD has trading disabled, ODD-USD lacks its base currency.
    assert pairs == [Pair("BTC-USD", "BTC", "USD"), Pair("ETH-BTC", "ETH", "BTC"), Pair("USDT-USDC", "USDT", "USDC")]


def test_bybit_lists_instruments_in_trading():
    doc = fixture("bybit/instruments_info.json")
    pairs = exchange_class("bybit").trading_pairs(doc)
    assert Pair("BTCUSDT", "BTC", "USDT") in pairs
    assert len(pairs) == sum(1 for i in doc["result"]["list"] if i["status"] == "Trading")


def test_okx_lists_live_instruments_not_preopen_or_suspended():
    doc = fixture("okx/instruments_spot.json")
    pairs = exchange_class("okx").trading_pairs(doc)
    # The fixture's preopen and suspended spot instruments and its live SWAP are left out.
    assert pairs == [Pair("BTC-USDT", "BTC", "USDT"), Pair("ETH-BTC", "ETH", "BTC")]
    assert {i["state"] for i in doc["data"]} == {"live", "preopen", "suspend"}


@pytest.mark.parametrize("name", ["binance", "kraken", "coinbase", "bybit", "okx"])
def test_each_venue_lists_from_its_full_metadata_endpoint(name):
    url = exchange_class(name).listing_url("http://127.0.0.1:9")
    expected = {
        "binance": "http://127.0.0.1:9/api/v3/exchangeInfo",
        "kraken": "http://127.0.0.1:9/0/public/AssetPairs",
        "coinbase": "http://127.0.0.1:9/products",
        "bybit": "http://127.0.0.1:9/v5/market/instruments-info?category=spot",
        "okx": "http://127.0.0.1:9/api/v5/public/instruments?instType=SPOT",
    }
    assert url == expected[name]


@pytest.mark.parametrize("name", ["binance", "kraken", "coinbase", "bybit", "okx"])
@given(doc=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                        max_leaves=12))
def test_any_answer_is_a_listing_or_a_value_error(name, doc):
    try:
        pairs = exchange_class(name).trading_pairs(doc)
    except ValueError:
        return
    assert all(isinstance(p, Pair) and p.symbol and p.base and p.quote for p in pairs)


def test_an_unreachable_listing_names_the_url():
    def refused(url: str, timeout_s: float) -> object:
        raise ConnectionRefusedError(111, "Connection refused")

    with pytest.raises(ListingUnavailableError, match=r"http://127.0.0.1:9/api/v3/exchangeInfo: ConnectionRefusedError"):
        fetch_listing(exchange_class("binance"), "http://127.0.0.1:9/", 1.0, refused)


def test_an_error_answer_or_an_empty_listing_is_unavailable_too():
    with pytest.raises(ListingUnavailableError, match="EGeneral"):
        fetch_listing(exchange_class("kraken"), "http://h", 1.0, lambda u, t: {"error": ["EGeneral:Internal error"]})
    with pytest.raises(ListingUnavailableError, match="no trading symbol"):
        fetch_listing(exchange_class("okx"), "http://h", 1.0, lambda u, t: {"code": "0", "data": []})
