"""The SparkSession every K2 job uses."""

from __future__ import annotations

from pyspark.sql import SparkSession

from k2.config import warn_unknown_variables


def spark_session(app_name: str) -> SparkSession:
    """A session named ``k2-<app_name>``; catalog and jars come from spark-defaults.conf."""
    warn_unknown_variables(f"spark job {app_name}")
    spark = SparkSession.builder.appName(f"k2-{app_name}").getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
