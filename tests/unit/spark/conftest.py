"""A local SparkSession for unit tests of the Spark jobs' DataFrame functions.

No services: ``local[2]``, no UI, no catalog. The JVM jars come from where ``k2 setup``
put them and go on the class path exactly as the jobs' spark-defaults.conf puts them
(k2ops/stack/spark.py), so ``from_avro`` resolves as it does in the real streams. ANSI
mode is Spark 4's default and is asserted: the tests are about totality under it.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def spark():
    from pyspark.sql import SparkSession

    from k2.settings import platform
    from k2ops.stack.artifacts import spark_jars

    jars = spark_jars(platform())
    if not any(p.name.startswith("spark-avro_") for p in jars):
        pytest.fail(f"spark-avro jar not found under {platform().cache_dir}/jvm/spark: run `make setup`")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    classpath = os.pathsep.join(str(p) for p in jars)
    session = (
        SparkSession.builder.master("local[2]")
        .appName("k2-unit-tests")
        .config("spark.driver.extraClassPath", classpath)
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "2")
        # Test batches are small: one partition each saves scheduling most of a batch's time.
        .config("spark.default.parallelism", "1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    assert session.conf.get("spark.sql.ansi.enabled") == "true", "these tests are about ANSI mode"
    yield session
    session.stop()
