"""The Spark class-data archive: where it is looked for, when it is used, what the driver gets."""

from __future__ import annotations

import os

from k2.config import load
from k2.settings import PlatformSettings
from k2ops.stack import spark, spark_cds


def _settings(tmp_path) -> PlatformSettings:
    jars = tmp_path / "cache" / "jvm" / "spark"
    jars.mkdir(parents=True)
    for name in ("iceberg-spark-runtime.jar", "spark-avro.jar"):
        (jars / name).write_bytes(b"PK")
    return load(PlatformSettings, {"K2_HOME": str(tmp_path / "home"), "K2_CACHE_DIR": str(tmp_path / "cache")})


def test_no_archive_no_archive_flags_and_the_quick_compiler_by_default(tmp_path):
    s = _settings(tmp_path)
    assert spark_cds.java_options(s) == ""
    conf = spark.defaults(s, s.spark_conf_dir)
    assert conf["spark.driver.extraJavaOptions"] == f"{spark.base_java_options(s.spark_conf_dir)} -XX:TieredStopAtLevel=1"


def test_generated_code_of_any_size_is_compiled_in_drivers_and_executors(tmp_path):
    # HotSpot leaves methods over 8,000 bytecode bytes to its interpreter unless told
    # otherwise; Spark's code for Silver's rules is that large (k2ops/stack/spark.py).
    s = _settings(tmp_path)
    s = load(PlatformSettings, {"K2_HOME": s.home, "K2_CACHE_DIR": str(tmp_path / "cache"),
                                "K2_SPARK_JAVA_OPTIONS": "-XX:TieredStopAtLevel=4"})
    conf = spark.defaults(s, s.spark_conf_dir)
    for key in ("spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions"):
        assert "-XX:-DontCompileHugeMethods" in conf[key].split(), key
    assert conf["spark.driver.extraJavaOptions"].endswith("-XX:TieredStopAtLevel=4")  # the user's come last


def test_the_setting_replaces_the_default_options(tmp_path):
    s = _settings(tmp_path)
    s = load(PlatformSettings, {"K2_HOME": s.home, "K2_CACHE_DIR": str(tmp_path / "cache"),
                                "K2_SPARK_JAVA_OPTIONS": "-XX:TieredStopAtLevel=4"})  # the JVM's full JIT
    options = spark.defaults(s, s.spark_conf_dir)["spark.driver.extraJavaOptions"]
    assert options == f"{spark.base_java_options(s.spark_conf_dir)} -XX:TieredStopAtLevel=4"


def test_built_archive_is_used_and_any_jar_change_retires_it(tmp_path):
    s = _settings(tmp_path)
    path = spark_cds.archive_path(s)
    assert path is not None and path.parent == s.spark_conf_dir and path.name.startswith("spark-cds-")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"archive")
    options = spark.defaults(s, s.spark_conf_dir)["spark.driver.extraJavaOptions"]
    assert f"-XX:SharedArchiveFile={path}" in options and "-Xshare:auto" in options
    assert options.startswith(spark.base_java_options(s.spark_conf_dir))

    jar = tmp_path / "cache" / "jvm" / "spark" / "spark-avro.jar"
    jar.write_bytes(b"PK-a-new-version")  # an upgraded jar: the old archive must not be named again
    assert spark_cds.archive_path(s) != path
    assert spark_cds.java_options(s) == ""


def test_driver_class_path_puts_every_jar_before_the_conf_folder(tmp_path):
    # spark-submit appends $SPARK_CONF_DIR and then Spark's jars to this; classes the
    # archive holds must come from entries ahead of that non-empty folder.
    s = _settings(tmp_path)
    entries = spark.defaults(s, s.spark_conf_dir)["spark.driver.extraClassPath"].split(os.pathsep)
    assert entries[:2] == [str(tmp_path / "cache" / "jvm" / "spark" / n)
                           for n in ("iceberg-spark-runtime.jar", "spark-avro.jar")]
    assert any(e.endswith("/pyspark/jars/spark-core_2.13-4.1.1.jar") for e in entries)
    assert all(e.endswith(".jar") for e in entries)
    executor = spark.defaults(s, s.spark_conf_dir)["spark.executor.extraClassPath"].split(os.pathsep)
    assert len(executor) == 2  # executors elsewhere keep their own Spark


def test_extra_java_options_come_last(tmp_path):
    s = _settings(tmp_path)
    s = load(PlatformSettings, {"K2_HOME": s.home, "K2_CACHE_DIR": str(tmp_path / "cache"),
                                "K2_SPARK_JAVA_OPTIONS": "-XX:TieredStopAtLevel=1 -Xss4m"})
    options = spark.defaults(s, s.spark_conf_dir)["spark.driver.extraJavaOptions"]
    assert options == f"{spark.base_java_options(s.spark_conf_dir)} -XX:TieredStopAtLevel=1 -Xss4m"
