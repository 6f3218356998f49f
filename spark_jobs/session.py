"""The SparkSession every K2 job uses."""

from __future__ import annotations

from pyspark.sql import SparkSession


def spark_session(app_name: str) -> SparkSession:
    """A session named ``k2-<app_name>``; catalog and jars come from spark-defaults.conf.
    The job has checked its environment already (:func:`spark_jobs.options.job_settings`)."""
    spark = SparkSession.builder.appName(f"k2-{app_name}").getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
