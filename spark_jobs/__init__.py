"""PySpark entry points (table bootstrap, the three streams, maintenance, benchmarks).

Each job is a small `spark-submit`-able module over importable functions. Spark, the
jars and the Iceberg catalog are configured by ``$SPARK_CONF_DIR/spark-defaults.conf``
(written by `k2 stack up`), so jobs carry no connection settings of their own.
"""
