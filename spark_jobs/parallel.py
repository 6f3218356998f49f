"""Spark actions side by side from one driver: a micro-batch's independent table commits.

Each of Silver's table appends writes its data files (a Spark job) and then commits to
the catalog (round trips to PostgreSQL, manifest and metadata files). One after the
other, a batch waits for their sum; side by side, for the slowest. Spark schedules jobs
from several driver threads, and Iceberg's catalog and tables are thread-safe.

The threads are :class:`pyspark.InheritableThread`: each is pinned to its own JVM thread
and starts with a copy of the calling thread's local properties (the streaming query's
ids, its job group), so Spark attributes their jobs to the batch as it does the caller's.
All but the SQL execution ids: the caller runs inside the micro-batch's execution, and a
copied id would make each thread's write a nested execution of it, ending while the
parent and its other children still run. Several nested executions of one root running
at once is what Spark does not expect (a first version that kept the ids failed the
stream with "requirement failed" four times in ten minutes); without the ids, each
thread's write is an execution of its own, as a write from any other thread would be.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pyspark import InheritableThread, SparkContext

T = TypeVar("T")

# SQLExecution.EXECUTION_ID_KEY and EXECUTION_ROOT_ID_KEY in Spark 4.
EXECUTION_PROPERTIES = ("spark.sql.execution.id", "spark.sql.execution.root.id")


def _as_own_execution(call: Callable[[], T]) -> Callable[[], T]:
    def run() -> T:
        sc = SparkContext._active_spark_context
        if sc is not None:
            for key in EXECUTION_PROPERTIES:
                sc.setLocalProperty(key, None)  # type: ignore[arg-type]  # None removes it
        return call()
    return run


def in_parallel(calls: list[Callable[[], T]]) -> list[T]:
    """Run each call in its own thread and return their results in order once all have
    ended; the first error, in the calls' order, is raised after every call has ended, so
    no commit is left running unseen."""
    if len(calls) <= 1:
        return [call() for call in calls]
    results: list[T | None] = [None] * len(calls)
    errors: list[BaseException | None] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            results[i] = _as_own_execution(calls[i])()
        except BaseException as exc:  # noqa: BLE001 - raised in the caller below
            errors[i] = exc

    threads = [InheritableThread(target=run, args=(i,), daemon=True) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for error in errors:
        if error is not None:
            raise error
    return results  # type: ignore[return-value]
