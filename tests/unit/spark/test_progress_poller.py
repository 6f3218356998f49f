"""The driver reads its query's progress by polling (spark_jobs.streaming.ProgressPoller):
every batch is reported exactly once and in order, however many ended between two polls,
and only a query waiting for its trigger counts as idle (a hung batch must look stalled)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from spark_jobs.streaming import ProgressPoller

RECENT_KEPT = 100  # Spark's spark.sql.streaming.numRecentProgressUpdates default


class FakeQuery:
    """What the poller reads of a running query (spark_jobs.streaming.QueryProgress)."""

    def __init__(self):
        self.progress: list[dict] = []
        self.active = False
        self.recent_reads = 0

    def trigger_active(self) -> bool:
        return self.active

    def run_batch(self, batch_id: int) -> None:
        self.progress.append({"batchId": batch_id, "timestamp": f"2026-12-03T12:00:{batch_id:02d}.000Z",
                              "numInputRows": batch_id})

    def last(self) -> dict | None:
        return self.progress[-1] if self.progress else None

    def recent(self) -> list[dict]:
        self.recent_reads += 1
        return list(self.progress[-RECENT_KEPT:])


class Recorder:
    def __init__(self):
        self.batches: list[int] = []
        self.idles = 0

    def batch(self, raw: dict) -> None:
        self.batches.append(raw["batchId"])

    def idle(self) -> None:
        self.idles += 1


def poller(clock=lambda: 0.0) -> tuple[ProgressPoller, Recorder]:
    rec = Recorder()
    return ProgressPoller(rec, idle_every_s=1.0, clock=clock), rec


def test_each_batch_once_and_the_ones_between_two_polls_from_recent_progress():
    q = FakeQuery()
    p, rec = poller()
    assert p.poll(q) == 0 and rec.batches == []
    q.run_batch(0)
    assert p.poll(q) == 1
    assert p.poll(q) == 0  # the same progress again is not a new batch
    for b in (1, 2, 3):
        q.run_batch(b)
    assert p.poll(q) == 3
    assert rec.batches == [0, 1, 2, 3]
    assert q.recent_reads == 2  # the first poll, and when batches ended unseen (here: 1 and 2)


def test_the_first_poll_reports_every_batch_this_query_run_made():
    # A restarted query resumes at its checkpoint's batch id; Spark's progress buffer
    # holds only this run's batches, so none of the previous process's is reported again.
    q = FakeQuery()
    for b in (40, 41):
        q.run_batch(b)
    p, rec = poller()
    p.poll(q)
    assert rec.batches == [40, 41]


def test_idle_only_while_waiting_for_the_trigger_and_at_most_once_per_interval():
    now = [0.0]
    q = FakeQuery()
    p, rec = poller(clock=lambda: now[0])
    q.run_batch(0)
    p.poll(q)
    p.poll(q)
    assert rec.idles == 1
    p.poll(q)  # same instant: no second idle
    assert rec.idles == 1
    now[0] = 1.5
    q.active = True  # a batch is running (or hangs): not idle, its age must grow
    p.poll(q)
    assert rec.idles == 1
    q.active = False
    p.poll(q)
    assert rec.idles == 2


@given(st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=60))
def test_any_pace_of_batches_against_polls_reports_every_batch_once_in_order(batches_between_polls):
    q = FakeQuery()
    p, rec = poller()
    next_id = 0
    for n in batches_between_polls:
        for _ in range(n):
            q.run_batch(next_id)
            next_id += 1
        p.poll(q)
    assert rec.batches == list(range(next_id))
