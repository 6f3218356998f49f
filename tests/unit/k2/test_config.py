"""The settings mechanism: defaults, conversion, errors that name the variable, typos."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from k2.config import SettingsError, load, setting, unknown_variables
from k2.settings import PlatformSettings


@dataclass(frozen=True)
class Sample:
    port: int = setting("SAMPLE_PORT", 1234, "a port")
    ratio: float = setting("SAMPLE_RATIO", 0.5, "a ratio")
    on: bool = setting("SAMPLE_ON", False, "a flag")
    names: tuple[str, ...] = setting("SAMPLE_NAMES", ("a",), "a list")
    url: str = setting("SAMPLE_URL", lambda v: f"http://host:{v['port']}", "derived")


def test_defaults_and_derived_defaults():
    s = load(Sample, {})
    assert (s.port, s.ratio, s.on, s.names) == (1234, 0.5, False, ("a",))
    assert s.url == "http://host:1234"


def test_environment_values_are_converted_and_feed_derived_defaults():
    s = load(Sample, {"K2_SAMPLE_PORT": "99", "K2_SAMPLE_ON": "yes", "K2_SAMPLE_NAMES": "x, y,,z"})
    assert s.port == 99 and s.on is True and s.names == ("x", "y", "z")
    assert s.url == "http://host:99"


@pytest.mark.parametrize(
    ("env", "value"),
    [("K2_SAMPLE_PORT", "ninety"), ("K2_SAMPLE_RATIO", "half"), ("K2_SAMPLE_ON", "maybe")],
)
def test_bad_values_fail_naming_the_variable(env, value):
    with pytest.raises(SettingsError, match=env):
        load(Sample, {env: value})


def test_platform_validation_names_the_setting():
    with pytest.raises(SettingsError, match="K2_KAFKA_PORT"):
        load(PlatformSettings, {"K2_KAFKA_PORT": "70000", "K2_HOME": "/tmp/k2-x"})


def test_unknown_k2_variables_are_reported():
    env = {"K2_KAFKA_PORT": "9092", "K2_KAFAK_PORT": "1", "PATH": "/bin"}
    assert unknown_variables(env) == ["K2_KAFAK_PORT"]


def test_local_defaults_bind_loopback():
    s = load(PlatformSettings, {"K2_HOME": "/tmp/k2-x"})
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert s.registry_url == "http://127.0.0.1:8081/apis/ccompat/v7"
    assert s.warehouse == "file:///tmp/k2-x/warehouse"


def test_a_secret_can_come_from_a_file_named_by_its_FILE_variable(tmp_path):
    secret = tmp_path / "pg_password"
    secret.write_text("s3cret\n")  # a file's final newline is not part of the secret
    s = load(PlatformSettings, {"K2_HOME": str(tmp_path), "K2_PG_PASSWORD_FILE": str(secret)})
    assert s.pg_password.reveal() == "s3cret"
    # The variable itself wins over the file; a non-secret setting has no _FILE form.
    s = load(PlatformSettings, {"K2_HOME": str(tmp_path), "K2_PG_PASSWORD": "direct",
                                "K2_PG_PASSWORD_FILE": str(secret)})
    assert s.pg_password.reveal() == "direct"
    assert "K2_PG_PASSWORD_FILE" not in unknown_variables({"K2_PG_PASSWORD_FILE": "x"})
    assert unknown_variables({"K2_PG_PORT_FILE": "x"}) == ["K2_PG_PORT_FILE"]


def test_an_unreadable_secret_file_fails_naming_the_variable(tmp_path):
    with pytest.raises(SettingsError, match="K2_PG_PASSWORD_FILE"):
        load(PlatformSettings, {"K2_HOME": str(tmp_path), "K2_PG_PASSWORD_FILE": str(tmp_path / "missing")})
