"""Unknown K2_* variables: every runtime's settings are known, typos get a suggestion."""

from __future__ import annotations

import io

from k2 import config
from k2.contracts import EXCHANGES, STREAMS


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
    unknown = config.warn_unknown_variables("k2 up", env, stream=out)
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
    assert config.warn_unknown_variables("k2 up", {"K2_KAFKA_PORT": "9092"}, stream=out) == []
    assert out.getvalue() == ""
