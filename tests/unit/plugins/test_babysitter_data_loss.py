"""The babysitter's DATA_LOST verdict: reported once, never a reason to kill or restart."""

from __future__ import annotations

import dataclasses

import pytest

from k2.config import load
from k2.settings import PlatformSettings
from k2.streams import LostRange, record_losses
from k2_airflow.babysitter import probes
from k2_airflow.babysitter.decision import Action, Observation, decide

STALL, GRACE = 600.0, 300.0
T = "market.crypto.trades.binance"
HEALTHY = Observation(
    stream="bronze_ingestion", holder_pid=4242, holder_alive=True, progress_age_s=20.0,
    running_since_s=3600.0, source_has_new_data=True, source_detail="12 Kafka messages",
    runner_active_runs=1, last_trigger_age_s=3600.0, has_checkpoint=True,
)
LOST = dict(new_lost_ranges=2, new_lost_offsets=15, loss_detail=f"{T}[0] offsets 10..14 (5 records)")


def test_healthy_stream_with_new_loss_is_data_lost_and_left_running():
    d = decide(dataclasses.replace(HEALTHY, **LOST), STALL, GRACE)
    assert (d.action, d.state) == (Action.LEAVE, "data_lost")
    assert d.data_lost.startswith("15 offsets in 2 range(s) were deleted by Kafka")
    assert f"{T}[0] offsets 10..14" in d.reason and "otherwise healthy" in d.reason


def test_loss_does_not_hide_a_needed_restart():
    crashed = dataclasses.replace(HEALTHY, holder_pid=None, holder_alive=False, runner_active_runs=0, **LOST)
    d = decide(crashed, STALL, GRACE)
    assert (d.action, d.state) == (Action.START, "restarted")
    assert d.data_lost is not None


def test_loss_does_not_hide_a_stall():
    stalled = dataclasses.replace(HEALTHY, progress_age_s=STALL + 1, **LOST)
    d = decide(stalled, STALL, GRACE)
    assert (d.action, d.state) == (Action.KILL, "stalled") and d.data_lost


def test_no_loss_no_report():
    d = decide(HEALTHY, STALL, GRACE)
    assert (d.state, d.data_lost) == ("healthy", None)


@pytest.fixture
def settings(tmp_path):
    return load(PlatformSettings, {"K2_HOME": str(tmp_path), "K2_CHECKPOINT_ROOT": str(tmp_path / "cp")})


def test_ledger_ranges_are_news_until_reported(settings):
    stream = "bronze_ingestion"
    record_losses(stream, [LostRange(T, 0, 10, 15), LostRange(T, 1, 30, 40)], settings)
    assert [r.count for r in probes.unreported_losses(stream, settings)] == [5, 10]
    obs = probes.observe(stream, settings, runner_active_runs=0)
    assert (obs.new_lost_ranges, obs.new_lost_offsets, obs.loss_ledger_size) == (2, 15, 2)
    # The stream finds another gap between the babysitter's look and its report.
    record_losses(stream, [LostRange(T, 0, 50, 51)], settings)
    probes.mark_losses_reported(stream, settings, obs.loss_ledger_size)
    assert probes.unreported_losses(stream, settings) == [LostRange(T, 0, 50, 51)]

    obs = probes.observe(stream, settings, runner_active_runs=0)
    assert (obs.new_lost_ranges, obs.new_lost_offsets) == (1, 1)
    assert obs.loss_detail == f"{T}[0] offsets 50..50 (1 records)"
    probes.mark_losses_reported(stream, settings, obs.loss_ledger_size)
    assert probes.unreported_losses(stream, settings) == []


def test_describe_losses_names_a_few_and_sums_the_rest():
    ranges = [LostRange(T, p, 0, 2) for p in range(probes.LOSS_DETAIL_RANGES + 3)]
    text = probes.describe_losses(ranges)
    assert text.count("offsets 0..1") == probes.LOSS_DETAIL_RANGES
    assert text.endswith("and 3 more range(s), 6 records")
