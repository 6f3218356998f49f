"""Where the machine's CPU goes while the platform runs: cores per component, from /proc.

A :class:`CpuMeter` samples every few seconds. Each process's own CPU time (user + system)
since the previous sample is charged to its nearest labelled ancestor as labelled at that
sample: a stream's JVM (the parent of the Python driver that holds the stream's lock),
else another Spark job's JVM (``job compaction``, ``job retention``, ...), else a stack
service (PostgreSQL, Kafka, the registry, each Airflow component, the workers). Spark
jobs run under Airflow tasks, so the nearest label keeps their CPU out of the
scheduler's; labelling at each sample keeps a stream restarted mid-run (new
pids) the stream's. Processes under no label (the benchmark itself, a shell) are
``other``; the machine's total comes from /proc/stat. A process that exits loses at most
its last interval's time (reaped children's times are not counted, or an Airflow task
would be charged again for the whole life of the stream JVM it reaped).
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
    """Cores each label used on average between two totals (CPU s per wall s)."""
    return {label: round(max(0.0, after.get(label, 0.0) - before.get(label, 0.0)) / seconds, 3)
            for label in sorted(set(before) | set(after))} if seconds > 0 else {}


Process = tuple[int, int]  # (pid, start time in ticks): a pid reused later is another process


def _proc_table() -> dict[Process, tuple[int, float]]:
    """(pid, start) -> (parent pid, own CPU s) for every process now."""
    procs = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        ticks = int(fields[11]) + int(fields[12])  # utime stime
        procs[(int(entry.name), int(fields[19]))] = (int(fields[1]), ticks / CLOCK_TICKS)
    return procs


def _machine_busy_s() -> float:
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    idle = cpu[3] + cpu[4]  # idle + iowait
    return (sum(cpu[:8]) - idle) / CLOCK_TICKS


class CpuMeter:
    """CPU seconds per component since :meth:`reset`, from :meth:`tick` samples."""

    def __init__(self, s) -> None:
        self.s = s
        self.reset()

    def reset(self) -> None:
        self.last = _proc_table()
        self.machine_at = _machine_busy_s()
        self.totals: dict[str, float] = {}

    def tick(self) -> None:
        procs = _proc_table()
        # A process new since the last sample started after it: all its time is this interval's.
        used = {pid: (ppid, cpu - self.last.get((pid, start), (0, 0.0))[1])
                for (pid, start), (ppid, cpu) in procs.items()}
        for label, seconds in attribute(used, _roots(self.s, used)).items():
            self.totals[label] = self.totals.get(label, 0.0) + seconds
        self.last = procs
        now = _machine_busy_s()
        self.totals["machine"] = self.totals.get("machine", 0.0) + now - self.machine_at
        self.machine_at = now

    def cores(self, seconds: float) -> dict[str, float]:
        """Cores each component used on average over ``seconds`` of wall time."""
        return shares({}, self.totals, seconds)


def _roots(s, procs: dict[int, tuple[int, float]]) -> dict[int, str]:
    from k2.contracts import STREAMS
    from k2.streams import lock_holder
    from k2ops.stack.services import all_services

    roots = {}
    for svc in all_services(s):
        pid = svc.pid()
        if pid:
            roots[pid] = svc.name
    for pid in procs:  # other Spark jobs (compaction, retention, ...) under an Airflow task
        if (job := spark_job_of(pid)) and pid not in roots:
            roots[pid] = f"job {job}"
    for stream in STREAMS:
        driver = lock_holder(stream, s)
        if driver and driver > 0:
            jvm = procs.get(driver, (0, 0.0))[0]  # spark-submit's JVM starts the Python driver
            roots[jvm if jvm > 1 else driver] = stream
    return roots


def spark_job_of(pid: int) -> str | None:
    """The job a Spark driver JVM runs (``spark_jobs/<job>.py`` on its command line), else None."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if not argv or not argv[0].endswith(b"java"):
        return None
    for arg in argv:
        if arg.endswith(b".py") and b"/spark_jobs/" in arg:
            return Path(arg.decode(errors="replace")).stem
    return None
