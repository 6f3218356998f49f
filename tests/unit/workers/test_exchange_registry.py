"""Every registry line (k2/exchanges.py) has a worker module, symbols and a simulator protocol
that agree with it, and the settings generated for it keep their names and defaults."""

from __future__ import annotations

import json
import re

import pytest

from k2.config import SettingsError, load
from k2.exchanges import VENUES, names
from workers.base import Exchange
from workers.exchanges import RegistrationError, _checked, exchange_class
from workers.settings import WorkerSettings
from workers.simulator.venues import protocol_class
from workers.symbols import SymbolTable, symbols_file


@pytest.mark.parametrize("venue", VENUES, ids=lambda v: v.name)
def test_registration_is_complete(venue):
    cls = exchange_class(venue.name)
    assert issubclass(cls, Exchange) and cls.__module__ == venue.module
    assert (cls.name, cls.enum_symbol, cls.sequential_ids) == (venue.name, venue.enum_symbol, venue.contiguous_ids)
    shipped = {k: v for k, v in json.loads(symbols_file(venue).read_text()).items() if not k.startswith("_")}  # _doc
    assert shipped and all(isinstance(bq, list) and len(bq) == 2 for bq in shipped.values())
    for symbol, (base, quote) in shipped.items():  # the separator Silver checks symbols against
        assert symbol == f"{base}{venue.symbol_separator}{quote}"
    table = SymbolTable.shipped()
    assert set(cls.default_symbols) <= set(table.known(venue.name))
    assert protocol_class(venue.name).name == venue.name


def test_a_module_that_disagrees_with_its_line_is_refused():
    class Wrong(exchange_class("kraken")):
        enum_symbol = "KRAKEN_TYPO"

    with pytest.raises(RegistrationError, match="enum_symbol='KRAKEN_TYPO', registry says 'KRAKEN'"):
        _checked(Wrong, VENUES[1])


def test_generated_settings_keep_their_names_and_defaults():
    s = load(WorkerSettings, {})
    assert [s.metrics_port(n) for n in names()] == [9101 + i for i in range(len(VENUES))]
    assert s.symbols("binance") == ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT")
    assert s.rest_url("kraken") == "https://api.kraken.com"
    assert (s.ping_interval("kraken"), s.ping_interval("binance")) == (30.0, None)
    env = {"K2_KRAKEN_SYMBOLS": "XBT/USD", "K2_WORKERS_KRAKEN_PING_INTERVAL_S": "5", "K2_BINANCE_METRICS_PORT": "0"}
    s = load(WorkerSettings, env)
    assert (s.kraken_symbols, s.kraken_ping_interval_s, s.binance_metrics_port) == (("XBT/USD",), 5.0, 0)


@pytest.mark.parametrize("venue", [v for v in VENUES if v.symbol_separator], ids=lambda v: v.name)
def test_a_symbol_without_the_venues_separator_fails_at_start_naming_the_setting(venue):
    setting = f"K2_{venue.name.upper()}_SYMBOLS"
    with pytest.raises(SettingsError, match=f"{setting}: 'BTCUSD' is not BASE{re.escape(venue.symbol_separator)}QUOTE"):
        load(WorkerSettings, {setting: "BTCUSD"}).validate()
    load(WorkerSettings, {setting: f"BTC{venue.symbol_separator}USD"}).validate()
