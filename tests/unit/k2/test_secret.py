"""Secrets never print, yet reach the services that need them."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from k2 import config
from k2.secret import Secret
from k2.settings import PlatformSettings
from k2ops.stack import airflow
from k2ops.stack.spark import catalog_conf


def test_a_secret_shows_a_mask_and_reveals_its_value():
    s = Secret("hunter2")
    assert "hunter2" not in repr(s) and "hunter2" not in str(s) and "hunter2" not in f"{s}"
    assert repr(s) == "Secret('********')"
    assert s.reveal() == "hunter2"
    assert s == Secret("hunter2") and s != Secret("other") and s != "hunter2"
    assert len({s, Secret("hunter2")}) == 1
    assert bool(s) and not Secret("")
    assert repr(Secret("")) == "Secret('')"
    assert pickle.loads(pickle.dumps(s)).reveal() == "hunter2"
    with pytest.raises(TypeError):
        Secret(None)  # type: ignore[arg-type]


def _secret_fields() -> list[tuple[type, str, str]]:
    config.import_settings_modules()
    return [(cls, f.name, f.metadata["env"]) for cls in config._REGISTRY
            for f in dataclasses.fields(cls) if f.metadata["secret"]]


def test_no_settings_object_prints_a_secret(tmp_path):
    fields = _secret_fields()
    # PG password, S3 key id and key, Airflow password: dropping one from the secrets fails here.
    assert {env for _, _, env in fields} >= {"K2_PG_PASSWORD", "K2_S3_ACCESS_KEY_ID",
                                             "K2_S3_SECRET_ACCESS_KEY", "K2_AIRFLOW_PASSWORD"}
    env = {"K2_HOME": str(tmp_path)} | {var: f"value-of-{var.lower()}" for _, _, var in fields}
    for cls in {cls for cls, _, _ in fields}:
        obj = config.load(cls, env)
        for field_cls, name, var in fields:
            if field_cls is not cls:
                continue
            value = getattr(obj, name)
            assert isinstance(value, Secret) and value.reveal() == env[var]
            assert env[var] not in repr(obj) and env[var] not in str(obj)
            shown = {row[0]: row[1] for row in config.describe(obj)}
            assert shown[var] == "********"


def test_an_unset_secret_is_an_empty_secret(tmp_path):
    s = config.load(PlatformSettings, {"K2_HOME": str(tmp_path)})
    assert s.pg_password == Secret("") and not s.s3_access_key_id


def _s3_settings(tmp_path) -> PlatformSettings:
    return config.load(PlatformSettings, {
        "K2_HOME": str(tmp_path), "K2_WAREHOUSE": "s3://bucket/wh", "K2_PG_PASSWORD": "pg-pw",
        "K2_S3_ACCESS_KEY_ID": "key-id", "K2_S3_SECRET_ACCESS_KEY": "key-secret",
        "K2_AIRFLOW_PASSWORD": "af-pw"})


def test_the_values_reach_the_connections_and_children_that_need_them(tmp_path):
    s = _s3_settings(tmp_path)
    assert s.pg_sqlalchemy_url("db") == "postgresql+psycopg2://k2:pg-pw@127.0.0.1:5433/db"
    conf = catalog_conf(s)
    cat = f"spark.sql.catalog.{s.catalog_name}"
    assert conf[f"{cat}.jdbc.password"] == "pg-pw"
    assert conf[f"{cat}.s3.access-key-id"] == "key-id"
    assert conf[f"{cat}.s3.secret-access-key"] == "key-secret"
    env = airflow.environment(s)
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("k2:pg-pw@127.0.0.1:5433/airflow")
    assert all(isinstance(v, str) for v in env.values())  # a Secret in a child's env would be a bug
