"""Where the machine's CPU goes while the platform runs: seconds per component, from /proc.

Each process's CPU time (user + system, plus what its reaped children used) is charged
to its nearest labelled ancestor: a stream's JVM (the parent of the Python driver that
holds the stream's lock), else a stack service (PostgreSQL, Kafka, the registry, each
Airflow component, the workers). A stream JVM runs under an Airflow task, so the
nearest label is what keeps a stream's CPU out of Airflow's. Processes under no label
(the benchmark itself, a shell) are ``other``; the machine's total comes from
/proc/stat. Two samples give each component's share of the cores over the time between.
"""

from __future__ import annotations

import os
from pathlib import Path

OTHER = "other"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def attribute(procs: dict[int, tuple[int, float]], roots: dict[int, str]) -> dict[str, float]:
    """CPU seconds per label: ``procs`` is pid -> (parent pid, CPU s), ``roots`` pid -> label;
    each pid is charged to the label of itself or its nearest labelled ancestor."""
    out: dict[str, float] = {}
    for pid, (_, cpu) in procs.items():
        label, seen, at = OTHER, set(), pid
        while at in procs and at not in seen:
            if at in roots:
                label = roots[at]
                break
            seen.add(at)
            at = procs[at][0]
        out[label] = out.get(label, 0.0) + cpu
    return out


def shares(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """Cores each label used on average between two samples (CPU s per wall s)."""
    return {label: round(max(0.0, after.get(label, 0.0) - before.get(label, 0.0)) / seconds, 3)
            for label in sorted(set(before) | set(after))} if seconds > 0 else {}


def _proc_table() -> dict[int, tuple[int, float]]:
    procs = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        ppid = int(fields[1])
        ticks = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        procs[int(entry.name)] = (ppid, ticks / CLOCK_TICKS)
    return procs


def _roots(s) -> dict[int, str]:
    from k2.contracts import STREAMS
    from k2.stack.services import all_services
    from k2.streams import lock_holder

    procs = _proc_table()
    roots = {}
    for svc in all_services(s):
        pid = svc.pid()
        if pid:
            roots[pid] = svc.name
    for stream in STREAMS:
        driver = lock_holder(stream, s)
        if driver and driver > 0:
            jvm = procs.get(driver, (0, 0.0))[0]  # spark-submit's JVM starts the Python driver
            roots[jvm if jvm > 1 else driver] = stream
    return roots


def sample(s) -> dict[str, float]:
    """CPU seconds so far per component, plus ``machine``: the whole machine's busy time."""
    out = attribute(_proc_table(), _roots(s))
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    idle = cpu[3] + cpu[4]  # idle + iowait
    out["machine"] = (sum(cpu[:8]) - idle) / CLOCK_TICKS
    return out
