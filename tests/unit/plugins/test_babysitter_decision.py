"""The babysitter's decisions from observations, and its source probes, without services."""

from __future__ import annotations

import dataclasses
import json

import pytest

from k2_airflow.babysitter import probes
from k2_airflow.babysitter.decision import Action, Observation, decide

STALL, GRACE = 600.0, 300.0
HEALTHY = Observation(
    stream="bronze_ingestion", holder_pid=4242, holder_alive=True, progress_age_s=20.0,
    running_since_s=3600.0, source_has_new_data=True, source_detail="12 Kafka messages",
    runner_active_runs=1, last_trigger_age_s=3600.0, has_checkpoint=True,
)
MISSING = dataclasses.replace(HEALTHY, holder_pid=None, holder_alive=False, runner_active_runs=0,
                              progress_age_s=None, running_since_s=None)


def _decide(**changes):
    base = MISSING if changes.pop("missing", False) else HEALTHY
    return decide(dataclasses.replace(base, **changes), STALL, GRACE)


def test_healthy_stream_is_left_alone():
    d = _decide()
    assert (d.action, d.state) == (Action.LEAVE, "healthy")


def test_quiet_stream_without_new_source_data_is_idle_not_stalled():
    d = _decide(progress_age_s=5000.0, source_has_new_data=False)
    assert (d.action, d.state) == (Action.LEAVE, "idle")


def test_stalled_stream_under_its_runner_is_killed_for_the_runners_retry():
    d = _decide(progress_age_s=STALL + 1)
    assert (d.action, d.state) == (Action.KILL, "stalled")
    assert "4242" in d.reason and "12 Kafka messages" in d.reason and "retry" in d.reason


def test_stalled_stream_without_a_runner_run_is_killed_and_triggered():
    d = _decide(progress_age_s=STALL + 1, runner_active_runs=0)
    assert (d.action, d.state) == (Action.RESTART, "stalled")


def test_unknown_source_never_triggers_a_blind_restart():
    d = _decide(progress_age_s=5000.0, source_has_new_data=None)
    assert (d.action, d.state) == (Action.LEAVE, "unknown")


def test_fresh_copy_is_not_judged_by_its_predecessors_progress():
    d = _decide(progress_age_s=5000.0, running_since_s=30.0)
    assert (d.action, d.state) == (Action.LEAVE, "healthy")


def test_copy_that_never_reported_is_stalled_after_the_limit():
    d = _decide(progress_age_s=None, running_since_s=STALL + 1)
    assert d.state == "stalled" and d.action is Action.KILL


def test_missing_stream_with_checkpoint_is_restarted_from_it():
    d = _decide(missing=True)
    assert (d.action, d.state) == (Action.START, "restarted")


def test_never_started_stream_is_started():
    d = _decide(missing=True, has_checkpoint=False)
    assert (d.action, d.state) == (Action.START, "started")


def test_recently_triggered_runner_is_given_time():
    d = _decide(missing=True, runner_active_runs=1, last_trigger_age_s=60.0)
    assert (d.action, d.state) == (Action.LEAVE, "starting")


def test_active_runner_without_lock_is_never_triggered_twice():
    d = _decide(missing=True, runner_active_runs=1, last_trigger_age_s=GRACE + 1)
    assert (d.action, d.state) == (Action.LEAVE, "waiting")


def test_lock_held_by_invisible_pid_is_left_alone():
    d = _decide(missing=True, holder_pid=-1)
    assert (d.action, d.state) == (Action.LEAVE, "unknown")


@pytest.fixture
def checkpoint(tmp_path):
    offsets = tmp_path / "offsets"
    offsets.mkdir()
    meta = json.dumps({"batchWatermarkMs": 0, "batchTimestampMs": 1})
    (offsets / "3").write_text("v1\n" + meta + "\n" + json.dumps({"t": {"0": 10, "1": 5}}) + "\n")
    (offsets / "4").write_text("v1\n" + meta + "\n" + json.dumps({"t": {"0": 12, "1": 5}}) + "\n")
    return tmp_path


def test_checkpoint_offsets_of_the_newest_batch(checkpoint):
    assert probes.latest_offsets_entries(checkpoint) == [{"t": {"0": 12, "1": 5}}]
    assert probes.latest_offsets_entries(checkpoint / "missing") == []


def test_kafka_new_data(checkpoint):
    entries = probes.latest_offsets_entries(checkpoint)
    assert probes.kafka_new_data(entries, {"t": {0: 12, 1: 5}}) == (False, "0 Kafka messages beyond the checkpoint")
    assert probes.kafka_new_data(entries, {"t": {0: 15, 1: 6}})[0] is True
    assert probes.kafka_new_data([], {"t": {0: 1}})[0] is True  # never read anything


def test_iceberg_new_data_ignores_maintenance_snapshots():
    entries = [{"version": 1, "snapshot_id": 2, "position": 0, "scan_all_files": False}]
    snaps = [(1, 1000, "append"), (2, 2000, "append"), (3, 3000, "delete"), (4, 4000, "replace")]
    assert probes.iceberg_new_data(entries, {"bronze": snaps}, None)[0] is False
    assert probes.iceberg_new_data(entries, {"bronze": [*snaps, (5, 5000, "append")]}, None)[0] is True


def test_iceberg_new_data_when_the_reached_snapshot_was_expired():
    entries = [{"snapshot_id": 99}]
    assert probes.iceberg_new_data(entries, {"s": [(5, 5000, "append")]}, 6000.0)[0] is False
    assert probes.iceberg_new_data(entries, {"s": [(5, 5000, "append")]}, 4000.0)[0] is True


def test_an_append_of_no_rows_is_not_new_data():
    """Bronze's first batch on an empty topic commits an append of 0 records; Silver,
    idle since it started (no offsets yet), must not be called stalled for it."""
    from pyiceberg.table.snapshots import Operation, Summary

    assert probes.snapshot_operation(Summary(Operation.APPEND, **{"added-records": "0"})) == probes.EMPTY_APPEND
    assert probes.snapshot_operation(Summary(Operation.APPEND, **{"added-records": "20"})) == "append"
    assert probes.snapshot_operation(Summary(Operation.REPLACE, **{"added-records": "0"})) == "replace"
    assert probes.snapshot_operation(None) == ""
    empty = [(1, 1000, probes.EMPTY_APPEND)]
    assert probes.iceberg_new_data([], {"bronze": empty}, None)[0] is False
    assert probes.iceberg_new_data([], {"bronze": [*empty, (2, 2000, "append")]}, None)[0] is True
