"""The job whose classes the Spark class-data archive holds (see k2ops.stack.spark_cds).

It touches what the K2 jobs load at start-up, without any service: an Iceberg table in
a throw-away Hadoop catalog (create, append, MERGE, batch and streaming reads), the
Kafka source's planning, Avro decoding and the Structured Streaming machinery.

    spark-submit k2ops/stack/spark_warmup.py --warehouse /tmp/somewhere
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", required=True, help="a throw-away folder for the Hadoop catalog")
    args = parser.parse_args(argv)

    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import from_avro

    spark = (SparkSession.builder.appName("k2-cds-warmup")
             .config("spark.sql.catalog.warm", "org.apache.iceberg.spark.SparkCatalog")
             .config("spark.sql.catalog.warm.type", "hadoop")
             .config("spark.sql.catalog.warm.warehouse", f"file://{args.warehouse}")
             .config("spark.sql.defaultCatalog", "warm")  # the platform's JDBC catalog may not be up
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    spark.sql("CREATE NAMESPACE IF NOT EXISTS warm.db")
    spark.sql("CREATE TABLE warm.db.src (id BIGINT, ts TIMESTAMP, v DECIMAL(18,8)) USING iceberg "
              "PARTITIONED BY (hours(ts)) TBLPROPERTIES ('format-version'='2')")
    spark.sql("CREATE TABLE warm.db.dst (id BIGINT, ts TIMESTAMP, v DECIMAL(18,8)) USING iceberg "
              "PARTITIONED BY (hours(ts)) TBLPROPERTIES ('format-version'='2')")
    rows = spark.range(100).select("id", F.current_timestamp().alias("ts"),
                                   (F.col("id") / 3).cast("decimal(18,8)").alias("v"))
    rows.writeTo("warm.db.src").append()

    def merge(batch, _batch_id: int) -> None:
        batch.createOrReplaceTempView("batch")
        batch.sparkSession.sql("MERGE INTO warm.db.dst t USING batch s ON t.id = s.id "
                               "WHEN NOT MATCHED THEN INSERT *")

    query = (spark.readStream.format("iceberg").load("warm.db.src").writeStream
             .option("checkpointLocation", f"{args.warehouse}/checkpoint")
             .foreachBatch(merge).trigger(availableNow=True).start())
    query.awaitTermination()
    schema = '{"type":"record","name":"W","fields":[{"name":"x","type":"long"}]}'
    spark.range(3).select(from_avro(F.lit(b"\x02"), schema, {"mode": "PERMISSIVE"}).alias("a")).collect()
    kafka = (spark.readStream.format("kafka").option("kafka.bootstrap.servers", "127.0.0.1:1")
             .option("subscribe", "warmup").load())  # planning only: nothing connects
    assert "value" in kafka.select(F.substring("value", 6, 1 << 20).alias("value")).columns
    total = spark.table("warm.db.dst").groupBy(F.hour("ts")).count().collect()
    print(f"warm-up done: {sum(r['count'] for r in total)} rows")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
