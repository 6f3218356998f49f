"""The benches' median batch (k2ops.bench.common.summarize_breakdowns)."""

from __future__ import annotations

from k2ops.bench.common import summarize_breakdowns


def test_a_phase_some_batches_skip_counts_zero_in_them_and_order_is_first_seen():
    batches = {
        ("silver_transformation", 1): {"build": 1.0, "schemas": 0.9, "commits": 2.0, "total": 4.0},
        ("silver_transformation", 2): {"build": 0.5, "commits": 1.0, "total": 2.0},
        ("silver_transformation", 3): {"build": 0.7, "commits": 1.5, "total": 3.0},
        ("gold_aggregation", 7): {"merge gold": 1.25, "total": 2.5},
    }
    assert summarize_breakdowns(batches) == {
        "gold_aggregation": {"batches": 1, "median_s": {"merge gold": 1.25, "total": 2.5}},
        "silver_transformation": {"batches": 3, "median_s": {
            "build": 0.7, "schemas": 0.0, "commits": 1.5, "total": 3.0}},
    }
    assert list(summarize_breakdowns(batches)["silver_transformation"]["median_s"]) == [
        "build", "schemas", "commits", "total"]
