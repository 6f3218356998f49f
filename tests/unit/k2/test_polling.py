"""wait_until (k2/polling.py): the first truthy value, or a timeout that says what never happened."""

from __future__ import annotations

import pytest

from k2.polling import wait_until


def test_returns_the_first_truthy_value_and_stops_probing():
    answers = iter([0, None, "", {"batch_id": 3}, {"batch_id": 4}])
    calls = []

    def probe():
        calls.append(1)
        return next(answers)

    assert wait_until(probe, timeout=30, what="a batch", interval=0) == {"batch_id": 3}
    assert len(calls) == 4


def test_times_out_naming_what_it_waited_for_and_the_last_value():
    calls = []

    def probe() -> list:
        calls.append(1)
        return []

    with pytest.raises(TimeoutError, match=r"timed out after 0s waiting for Gold to catch up; last value \[\]"):
        wait_until(probe, timeout=0, what="Gold to catch up", interval=0)
    assert len(calls) == 1  # probed once even with no time left


def test_keeps_probing_until_the_condition_holds_within_the_timeout():
    remaining = iter(range(5, -1, -1))  # 5, 4, ... 0: true after six probes
    assert wait_until(lambda: next(remaining) == 0, timeout=30, what="the countdown", interval=0.001) is True
