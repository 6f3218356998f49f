"""A batch's rows held behind a plan of just those rows, then freed (spark_jobs/held.py)."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from spark_jobs.held import LOGICAL_RDD, hold


def persistent_rdds(spark) -> int:
    return spark.sparkContext._jsc.sc().getPersistentRDDs().size()


def test_held_rows_are_computed_once_planned_as_a_scan_and_freed_on_release(spark):
    before = persistent_rdds(spark)
    computed = spark.sparkContext.accumulator(0)

    def count_row(value: int) -> int:
        computed.add(1)
        return value

    counted = F.udf(count_row, "long")
    held = hold(spark.range(500).select(counted("id").alias("id"), (F.col("id") % 5).alias("part")))
    assert computed.value == 500  # eager: one pass now
    assert persistent_rdds(spark) == before + 1
    assert held.frame._jdf.queryExecution().logical().getClass().getName() == LOGICAL_RDD
    assert {r.part: r["count"] for r in held.frame.groupBy("part").count().collect()} == {p: 100 for p in range(5)}
    assert held.frame.where("part = 3").agg(F.sum("id")).first()[0] == sum(range(3, 500, 5))
    assert computed.value == 500  # the actions read the held rows, not the source again

    held.release()
    assert persistent_rdds(spark) == before
    with pytest.raises(Exception, match="CHECKPOINT_RDD_BLOCK_ID_NOT_FOUND"):
        held.frame.count()
