"""The e2e tier's one shared pipeline, and the fault matrix's recovery times in the summary."""

from __future__ import annotations

import pytest

from k2ops.pipeline import IsolatedPipeline
from shared_pipeline import SharedPipeline, StreamKeeper

TRIGGER = "5 seconds"


@pytest.fixture(scope="session")
def shared(stack, run_id, tmp_path_factory):
    """Topics, tables and the three streams, started once for every e2e phase (see shared_pipeline)."""
    # A 5 s trigger, not the platform's 2 s: with trades flowing, each stream runs a batch
    # every trigger, and a batch's fixed CPU cost dominates at test volumes (measured at 8
    # trades/s per venue: the three streams use 1.5 cores of 2 at 2 s, 0.9 at 5 s). The
    # tests check what lands, not how fast; `make test` is CPU-bound, and the completeness
    # module runs its copy of this pipeline beside three other test groups.
    pipe = IsolatedPipeline(tmp_path_factory.mktemp("e2e"), run_id, trigger=TRIGGER)
    keeper = StreamKeeper(pipe)
    try:
        pipe.create_topics()
        pipe.bootstrap_tables()
        pipe.start_streams()
        keeper.start()
        yield SharedPipeline(pipe, keeper)
    finally:
        keeper.stop()
        pipe.cleanup()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    try:
        from test_fault_matrix import RECOVERY
    except ImportError:
        return
    if not RECOVERY:
        return
    terminalreporter.section("fault matrix: time to recovery")
    for row in RECOVERY:
        terminalreporter.write_line(f"{row['fault']:<45} {row['recovery_s']:>7.1f} s   {row['detail']}")
