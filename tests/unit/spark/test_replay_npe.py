"""Only Spark 4.1.1's replay-progress NullPointerException is retried, nothing else."""

from __future__ import annotations

from spark_jobs.streaming import _is_replay_progress_npe

SPARK_MESSAGE = ('[STREAM_FAILED] Query [id = 1, runId = 2] terminated with exception: Cannot invoke '
                 '"scala.collection.IterableOps.map(scala.Function1)" because the return value of '
                 '"scala.Option.get()" is null SQLSTATE: XXKST')


def test_the_known_failure_is_recognised():
    assert _is_replay_progress_npe(RuntimeError(SPARK_MESSAGE))


def test_other_failures_are_not():
    assert not _is_replay_progress_npe(RuntimeError("java.lang.NullPointerException"))
    assert not _is_replay_progress_npe(RuntimeError("Cannot invoke \"scala.Option.get()\" on commit"))
    assert not _is_replay_progress_npe(None)
