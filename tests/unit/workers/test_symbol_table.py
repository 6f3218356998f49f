import pytest

from workers.exchanges.binance import Binance
from workers.exchanges.kraken import Kraken, normalize_symbol
from workers.symbols import Pair, SymbolTable


def test_shipped_table_has_base_and_quote_from_metadata():
    table = SymbolTable.shipped()
    assert table.lookup("binance", "BTCUSDT") == Pair("BTCUSDT", "BTC", "USDT")
    assert table.lookup("binance", "ETHBTC") == Pair("ETHBTC", "ETH", "BTC")
    assert table.lookup("kraken", "DOGE/USD") == Pair("DOGE/USD", "DOGE", "USD")
    assert table.lookup("kraken", "XBT/USD") is None  # keys are normalized names
    assert normalize_symbol("XBT/USD") == "BTC/USD"


def test_binance_exchange_info_response():
    doc = {
        "timezone": "UTC",
        "symbols": [
            {"symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT"},
            {"symbol": "PEPEUSDT", "status": "TRADING", "baseAsset": "PEPE", "quoteAsset": "USDT"},
        ],
    }
    pairs = Binance.pairs_from_metadata(doc)
    assert pairs == [Pair("BTCUSDT", "BTC", "USDT"), Pair("PEPEUSDT", "PEPE", "USDT")]
    table = SymbolTable.shipped().updated("binance", pairs)
    assert table.lookup("binance", "PEPEUSDT") == Pair("PEPEUSDT", "PEPE", "USDT")


def test_kraken_asset_pairs_response_normalizes_v1_names():
    doc = {
        "error": [],
        "result": {
            "XXBTZUSD": {"altname": "XBTUSD", "wsname": "XBT/USD", "base": "XXBT", "quote": "ZUSD"},
            "XDGEUR": {"altname": "XDGEUR", "wsname": "XDG/EUR", "base": "XXDG", "quote": "ZEUR"},
            "NOWS": {"altname": "NOWS"},
        },
    }
    pairs = Kraken.pairs_from_metadata(doc)
    assert pairs == [Pair("BTC/USD", "BTC", "USD"), Pair("DOGE/EUR", "DOGE", "EUR")]


def test_kraken_error_response_raises():
    with pytest.raises(ValueError, match="EGeneral"):
        Kraken.pairs_from_metadata({"error": ["EGeneral:Internal error"]})
