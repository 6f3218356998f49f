"""The s3:// warehouse code path (MinIO in docker-compose) against an S3-compatible server.

moto's standalone server speaks the S3 REST API on 127.0.0.1; Spark writes through
Iceberg's S3FileIO and pyiceberg reads back through pyarrow's S3 filesystem, with the
same settings the compose deployment uses (K2_WAREHOUSE, K2_S3_*).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from k2.catalog import catalog
from k2.config import load
from k2.jobs import job_path
from k2.polling import wait_until
from k2.settings import REPO_ROOT, PlatformSettings
from k2ops.stack import spark
from k2ops.stack.airflow import environment
from ports import free_port

pytestmark = pytest.mark.integration

KEY, SECRET = "k2-test-key", "k2-test-secret"  # moto accepts any credentials




@pytest.fixture
def s3_endpoint(tmp_path):
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=open(tmp_path / "moto.log", "wb"), stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 30,
                   what="moto S3 server")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


def test_spark_and_pyiceberg_share_an_s3_warehouse(stack, run_id, s3_endpoint, tmp_path):
    bucket = f"k2-warehouse-{run_id}"
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id=KEY,
                      aws_secret_access_key=SECRET, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)

    overrides = {
        "K2_CATALOG": f"k2s3_{run_id}",
        "K2_WAREHOUSE": f"s3://{bucket}/warehouse",
        "K2_S3_ENDPOINT": s3_endpoint,
        "K2_S3_ACCESS_KEY_ID": KEY,
        "K2_S3_SECRET_ACCESS_KEY": SECRET,
    }
    settings = load(PlatformSettings, {**os.environ, **overrides})
    conf_dir = tmp_path / "spark-conf"
    spark.write_conf(settings, conf_dir)
    env = {**environment(stack), **overrides, "SPARK_CONF_DIR": str(conf_dir)}

    table = f"objstore_{run_id}.trades"
    result = subprocess.run(
        [spark.spark_submit(), str(job_path("smoke")), "--table", table,
         "--rows", "12"],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert any(k.endswith(".parquet") for k in keys), keys
    assert any(k.endswith(".metadata.json") for k in keys), keys

    rows = catalog(settings).load_table(table).scan().to_arrow().to_pydict()
    assert sorted(rows["id"]) == list(range(12))
