"""Fixtures of the worker integration tests (helpers live in worker_harness.py)."""

from worker_harness import make_simulator, stack, start_worker, topics  # noqa: F401
