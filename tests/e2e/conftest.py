"""Print the fault matrix's recovery times in the test summary."""

from __future__ import annotations


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
