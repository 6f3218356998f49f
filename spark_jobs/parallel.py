"""Spark actions side by side from one driver: independent table commits of a micro-batch.

A batch's table commits are independent: each writes its data files (a Spark job) and
then commits to the catalog (round trips to PostgreSQL, metadata files). One after the
other, a batch waits for their sum; side by side, for the slowest. Spark schedules jobs
from several driver threads, and the Iceberg catalog is thread-safe.

The threads are :class:`pyspark.InheritableThread`: each is pinned to its own JVM thread
and inherits the calling thread's local properties (the streaming query's ids, job
group), so Spark attributes their jobs to the batch as it does the caller's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pyspark import InheritableThread

T = TypeVar("T")


def in_parallel(calls: list[Callable[[], T]]) -> list[T]:
    """Run each call in its own thread (the first in the caller's) and return their results
    in order once all have finished; the first call's error that was raised, in order, is
    re-raised after every call has ended, so no commit is left running unseen."""
    if len(calls) <= 1:
        return [call() for call in calls]
    results: list[T | None] = [None] * len(calls)
    errors: list[BaseException | None] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            results[i] = calls[i]()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            errors[i] = exc

    threads = [InheritableThread(target=run, args=(i,), daemon=True) for i in range(1, len(calls))]
    for thread in threads:
        thread.start()
    run(0)
    for thread in threads:
        thread.join()
    for error in errors:
        if error is not None:
            raise error
    return results  # type: ignore[return-value]
