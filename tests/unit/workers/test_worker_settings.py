import pytest

from k2.config import SettingsError, load
from workers.settings import WorkerSettings


def test_defaults_point_at_live_exchanges():
    s = load(WorkerSettings, {})
    assert s.binance_urls == ("wss://stream.binance.com:9443", "wss://data-stream.binance.vision")
    assert s.kraken_urls == ("wss://ws.kraken.com/v2",)
    assert (s.binance_metrics_port, s.kraken_metrics_port) == (9101, 9102)
    assert s.connection_lifetime_s < 24 * 3600


def test_comma_lists_and_numbers_are_parsed():
    s = load(
        WorkerSettings,
        {
            "K2_BINANCE_URLS": "ws://127.0.0.1:1, ws://127.0.0.1:2",
            "K2_KRAKEN_SYMBOLS": "XBT/USD,ETH/USD",
            "K2_WORKERS_CONNECTION_LIFETIME_S": "2.5",
            "K2_WORKERS_REFRESH_SYMBOLS": "false",
        },
    )
    assert s.binance_urls == ("ws://127.0.0.1:1", "ws://127.0.0.1:2")
    assert s.kraken_symbols == ("XBT/USD", "ETH/USD")
    assert s.connection_lifetime_s == 2.5
    assert s.refresh_symbols is False


@pytest.mark.parametrize(
    "env, fragment",
    [
        ({"K2_BINANCE_URLS": "https://stream.binance.com"}, "K2_BINANCE_URLS"),
        ({"K2_KRAKEN_URLS": ","}, "K2_KRAKEN_URLS"),
        ({"K2_KRAKEN_SYMBOLS": "BTCUSD"}, "K2_KRAKEN_SYMBOLS"),
        ({"K2_WORKERS_WATCHDOG_S": "0"}, "K2_WORKERS_WATCHDOG_S"),
        ({"K2_WORKERS_WATCHDOG_S": "soon"}, "K2_WORKERS_WATCHDOG_S"),
        ({"K2_WORKERS_BACKOFF_CAP_S": "0.1"}, "K2_WORKERS_BACKOFF_CAP_S"),
        ({"K2_WORKERS_COMPRESSION": "brotli"}, "K2_WORKERS_COMPRESSION"),
        ({"K2_KRAKEN_METRICS_PORT": "70000"}, "K2_KRAKEN_METRICS_PORT"),
        ({"K2_WORKERS_REFRESH_SYMBOLS": "maybe"}, "K2_WORKERS_REFRESH_SYMBOLS"),
    ],
)
def test_bad_values_name_the_variable(env, fragment):
    with pytest.raises(SettingsError, match=fragment):
        load(WorkerSettings, env)
