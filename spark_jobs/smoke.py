"""Smoke job: create an Iceberg table in the shared catalog and append rows to it.

Proves that spark-submit, the jars and the JDBC catalog work together; pyiceberg then
reads the same table back (see tests/integration/test_spark_iceberg.py).

    spark-submit spark_jobs/smoke.py --table smoke.check --rows 10
"""

from __future__ import annotations

import argparse
import sys

from k2.log import job_log
from spark_jobs.options import job_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", required=True, help="namespace.table to (re)create")
    parser.add_argument("--rows", type=int, default=10, help="rows to write (id 0..rows-1)")
    args = parser.parse_args(argv)
    job_settings("smoke")  # the environment check every job runs; smoke itself needs no setting

    from spark_jobs.session import spark_session

    spark = spark_session("smoke")
    namespace = args.table.split(".")[0]
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {namespace}")
    spark.sql(f"DROP TABLE IF EXISTS {args.table} PURGE")
    spark.sql(f"CREATE TABLE {args.table} (id BIGINT, label STRING) USING iceberg")
    rows = spark.range(args.rows).selectExpr("id", "concat('row-', id) AS label")
    rows.writeTo(args.table).append()
    written = spark.table(args.table).count()
    job_log("smoke").info("rows_written", rows=written, table=args.table)
    spark.stop()
    return 0 if written == args.rows else 1


if __name__ == "__main__":
    sys.exit(main())
