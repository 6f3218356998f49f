"""The test suite's fake clock, and the maintenance jobs' injected --now."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import pytest

from fake_clock import FakeClock, fake_now
from k2.contracts import GOLD_TABLE, silver_table
from spark_jobs.compaction import cold_filter
from spark_jobs.maintenance import parse_instant

REAL = datetime(2026, 12, 2, 10, 15, 30, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    ("00:05", datetime(2026, 12, 2, 0, 5, tzinfo=UTC)),
    ("01:30", datetime(2026, 12, 2, 1, 30, tzinfo=UTC)),
    ("23:55", datetime(2026, 12, 1, 23, 55, tzinfo=UTC)),  # later today has not happened yet
    ("10:15", datetime(2026, 12, 2, 10, 15, tzinfo=UTC)),
    ("2026-01-01T00:05:00Z", datetime(2026, 1, 1, 0, 5, tzinfo=UTC)),
    ("2026-01-01T00:05:00", datetime(2026, 1, 1, 0, 5, tzinfo=UTC)),
    ("2026-01-01T02:05:00+02:00", datetime(2026, 1, 1, 0, 5, tzinfo=UTC)),
])
def test_fake_now(text, expected):
    assert fake_now(text, REAL) == expected


def test_now_option_parses_instants_and_names_itself_on_error():
    assert parse_instant("2026-01-31T00:05:00Z") == datetime(2026, 1, 31, 0, 5, tzinfo=UTC)
    assert parse_instant("2026-01-31T00:05") == datetime(2026, 1, 31, 0, 5, tzinfo=UTC)
    assert parse_instant("2026-01-31T01:05:00+01:00") == datetime(2026, 1, 31, 0, 5, tzinfo=UTC)
    with pytest.raises(argparse.ArgumentTypeError, match="--now 'yesterday'"):
        parse_instant("yesterday")


@pytest.mark.parametrize(("now", "silver", "gold"), [
    # Near midnight the previous day is not cold yet: it ended less than 2 h ago.
    (datetime(2026, 12, 2, 0, 5, tzinfo=UTC), "2026-12-01", "2026-12-01 22:00:00"),
    (datetime(2026, 12, 2, 1, 30, tzinfo=UTC), "2026-12-01", "2026-12-01 23:00:00"),
    (datetime(2026, 12, 2, 2, 0, tzinfo=UTC), "2026-12-02", "2026-12-02 00:00:00"),
    (datetime(2026, 12, 1, 23, 55, tzinfo=UTC), "2026-12-01", "2026-12-01 21:00:00"),
])
def test_cold_partitions_around_midnight(now, silver, gold):
    assert cold_filter(silver_table("binance"), now, 2) == f"exchange_date < DATE '{silver}'"
    assert cold_filter(GOLD_TABLE, now, 2) == f"`timestamp` < TIMESTAMP '{gold}+00:00'"


def test_fake_clock_moves_only_when_told_and_never_back():
    clock = FakeClock(10.0)
    assert (clock(), clock()) == (10.0, 10.0)
    assert clock.advance(0.25) == 10.25 and clock() == 10.25
    assert clock.set(12.0) == 12.0 and clock() == 12.0
    with pytest.raises(ValueError, match="cannot go back"):
        clock.set(11.0)
    assert clock() == 12.0
