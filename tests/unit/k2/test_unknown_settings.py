"""Unknown K2_* variables: every runtime's settings are known, typos get a suggestion."""

from __future__ import annotations

import io

import pytest

from k2 import config
from k2.config import SettingsError
from k2.contracts import EXCHANGES, STREAMS
from k2.errors import K2Error


def _known() -> set[str]:
    config.import_settings_modules()
    return config.known_variables()


def test_every_stream_trigger_and_per_exchange_setting_is_known():
    # Written out from the naming rules (not through the modules' own helpers), so a
    # setting that stops being registered makes this fail.
    known = _known()
    for stream in STREAMS:
        assert f"K2_{stream.upper()}_TRIGGER" in known
    for exchange in EXCHANGES:
        for suffix in ("URLS", "SYMBOLS", "REST_URL", "METRICS_PORT"):
            assert f"K2_{exchange.name.upper()}_{suffix}" in known
    assert {"K2_HOME", "K2_KAFKA_PORT", "K2_WORKERS_TOPIC_PREFIX", "K2_LOG_MAX_MB",
            "K2_LOG_BACKUPS", "K2_AIRFLOW_LOG_RETENTION_DAYS"} <= known


def test_a_settings_class_registered_later_is_known_without_a_list_to_edit():
    from dataclasses import dataclass

    @config.register
    @dataclass(frozen=True)
    class Extra:
        knob: int = config.setting("TEST_ONLY_KNOB", 1, "a knob")

    try:
        assert config.unknown_variables({"K2_TEST_ONLY_KNOB": "2"}) == []
    finally:
        config._REGISTRY.remove(Extra)
    assert config.unknown_variables({"K2_TEST_ONLY_KNOB": "2"}) == ["K2_TEST_ONLY_KNOB"]


def test_warning_names_each_unknown_variable_and_the_closest_setting():
    _known()
    out = io.StringIO()
    env = {"K2_KAFAK_PORT": "1", "K2_BRONZE_INGESTON_TRIGGER": "5 seconds", "K2_ZZZ": "1",
           "K2_KAFKA_PORT": "9092", "PATH": "/bin"}
    unknown = config.check_unknown_variables("k2 up", env, stream=out)
    assert len(unknown) == 3
    assert out.getvalue().splitlines() == [
        "k2 up: warning: K2_BRONZE_INGESTON_TRIGGER is not a K2 setting and is ignored "
        "(did you mean K2_BRONZE_INGESTION_TRIGGER?); `k2 config` lists every setting",
        "k2 up: warning: K2_KAFAK_PORT is not a K2 setting and is ignored "
        "(did you mean K2_KAFKA_PORT?); `k2 config` lists every setting",
        "k2 up: warning: K2_ZZZ is not a K2 setting and is ignored "
        "(no setting has a similar name); `k2 config` lists every setting",
    ]


def test_no_warning_when_every_variable_is_declared():
    _known()
    out = io.StringIO()
    assert config.check_unknown_variables("k2 up", {"K2_KAFKA_PORT": "9092"}, stream=out) == []
    assert out.getvalue() == ""


def test_strict_mode_rejects_naming_every_unknown_variable():
    _known()
    out = io.StringIO()
    env = {"K2_STRICT_SETTINGS": "true", "K2_KAFAK_PORT": "1", "K2_ZZZ": "1"}
    with pytest.raises(SettingsError) as caught:
        config.check_unknown_variables("k2 up", env, stream=out)
    assert isinstance(caught.value, K2Error)
    message = str(caught.value)
    assert "K2_STRICT_SETTINGS" in message and "K2_ZZZ" in message
    assert "K2_KAFAK_PORT is not a K2 setting and is ignored (did you mean K2_KAFKA_PORT?)" in message
    assert out.getvalue() == ""  # rejected, not warned
    # Strict with nothing unknown goes on quietly.
    assert config.check_unknown_variables("k2 up", {"K2_STRICT_SETTINGS": "1"}, stream=out) == []


def test_the_callers_format_gets_the_variable_and_the_closest_name():
    _known()
    seen = []
    config.check_unknown_variables("x", {"K2_KAFKA_BOOTSTRAP_SERVER": "h:1"},
                                   warn=lambda *args: seen.append(args))
    assert [(v, c) for v, c, _ in seen] == [("K2_KAFKA_BOOTSTRAP_SERVER", "K2_KAFKA_BOOTSTRAP")]
