import pytest

from k2.config import SettingsError, load
from workers.settings import WorkerSettings


def test_defaults_point_at_live_exchanges():
    s = load(WorkerSettings, {})
    assert s.binance_urls == ("wss://stream.binance.com:9443", "wss://data-stream.binance.vision")
    assert s.kraken_urls == ("wss://ws.kraken.com/v2",)
    assert (s.binance_metrics_port, s.kraken_metrics_port) == (9101, 9102)
    assert s.connection_lifetime_s < 24 * 3600
    assert s.max_frame_bytes == 1_048_576


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


# (variable, a bad value, what the error says after the variable's name)
BAD_VALUES = [
    ("K2_BINANCE_URLS", "https://stream.binance.com", ""),
    ("K2_KRAKEN_URLS", ",", ""),
    ("K2_KRAKEN_SYMBOLS", "BTCUSD", ""),
    ("K2_WORKERS_WATCHDOG_S", "0", ""),
    ("K2_WORKERS_WATCHDOG_S", "soon", ""),
    ("K2_WORKERS_BACKOFF_CAP_S", "0.1", ""),
    ("K2_WORKERS_COMPRESSION", "brotli", ""),
    ("K2_KRAKEN_METRICS_PORT", "70000", ""),
    ("K2_WORKERS_REFRESH_SYMBOLS", "maybe", ""),
    ("K2_WORKERS_MAX_FRAME_BYTES", "4095", ": must be 4096-67108864"),
    ("K2_WORKERS_MAX_FRAME_BYTES", "67108865", ""),
    ("K2_WORKERS_MAX_FRAME_BYTES", "1MB", ""),
    ("K2_WORKERS_READ_INTERVAL_MS", "-1", ": must be 0-1000 ms, got -1"),
    ("K2_WORKERS_READ_INTERVAL_MS", "1001", ""),
    ("K2_WORKERS_READ_INTERVAL_MS", "0.5", ""),
]


@pytest.mark.parametrize("variable, value, then", BAD_VALUES)
def test_bad_values_name_the_variable(variable, value, then):
    with pytest.raises(SettingsError, match=variable + then):
        load(WorkerSettings, {variable: value})


def test_backfill_settings_and_guard_against_mixing_venues(tmp_path):
    from workers.recovery import backfill_blocker, state_path

    s = load(WorkerSettings, {"K2_WORKERS_STATE_DIR": str(tmp_path)})
    assert (s.backfill, s.backfill_max_trades, s.backfill_page_limit) == (True, 100_000, 1000)
    assert state_path(s, "binance") == tmp_path / "binance" / "last_acked.json"
    assert backfill_blocker(s, "binance") == ""  # live stream, live REST
    local_ws = load(WorkerSettings, {"K2_BINANCE_URLS": "ws://127.0.0.1:18765"})
    assert "K2_BINANCE_REST_URL" in backfill_blocker(local_ws, "binance")
    sim = load(WorkerSettings, {"K2_BINANCE_URLS": "ws://127.0.0.1:18765", "K2_BINANCE_REST_URL": "http://127.0.0.1:18765"})
    assert backfill_blocker(sim, "binance") == ""
    off = load(WorkerSettings, {"K2_WORKERS_BACKFILL": "false"})
    assert "K2_WORKERS_BACKFILL=false" in backfill_blocker(off, "binance")
    with pytest.raises(SettingsError, match="K2_WORKERS_BACKFILL_PAGE_LIMIT"):
        load(WorkerSettings, {"K2_WORKERS_BACKFILL_PAGE_LIMIT": "1001"})
    with pytest.raises(SettingsError, match="K2_BINANCE_REST_URL"):
        load(WorkerSettings, {"K2_BINANCE_REST_URL": "ws://127.0.0.1:1"})


def test_worker_warns_about_unknown_k2_variables_in_its_log(tmp_path):
    """`python -m workers.run` (how compose starts a worker) names a misspelt setting in a
    JSON warning line before anything else, then fails on the bad one it does know."""
    import json
    import os
    import subprocess
    import sys

    env = {**{k: v for k, v in os.environ.items() if not k.startswith("K2_")},
           "K2_HOME": str(tmp_path), "K2_KAFAK_PORT": "9092", "K2_WORKERS_MAX_FRAME_BYTES": "1"}
    result = subprocess.run([sys.executable, "-m", "workers.run", "binance"], env=env,
                            capture_output=True, text=True, timeout=60)
    events = [json.loads(line) for line in (result.stdout + result.stderr).splitlines()
              if line.startswith("{")]
    assert result.returncode == 78, result.stdout + result.stderr
    warning = next(e for e in events if e.get("event") == "unknown_setting")
    assert warning["variable"] == "K2_KAFAK_PORT" and "did you mean K2_KAFKA_PORT?" in warning["message"]
    assert [e["event"] for e in events].index("unknown_setting") < [e["event"] for e in events].index(
        "configuration_error")
