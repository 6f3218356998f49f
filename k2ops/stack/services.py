"""The stack's services in start order, and what `up`, `down` and `status` do with them."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from k2.settings import PlatformSettings, fresh_platform
from k2ops.stack import airflow, artifacts, kafka, postgres, registry, spark, spark_cds, workers
from k2ops.stack.errors import StackError
from k2ops.stack.process import Service
from k2ops.stack.progress import say

GROUPS = ("postgres", "kafka", "registry", "spark", "airflow")


def all_services(s: PlatformSettings) -> list[Service]:
    """Every service the stack may run, in start order (stop is the reverse)."""
    out = [postgres.service(s), kafka.service(s), registry.service(s)]
    out += spark.standalone_services(s)
    out += airflow.services(s)
    out.append(workers.service(s))
    return out


OPTIONAL = ("spark-master", "spark-worker", "workers")  # listed only when started


def up(groups: Sequence[str] = GROUPS, spark_standalone: bool = False) -> PlatformSettings:
    unknown = set(groups) - set(GROUPS)
    if unknown:
        raise StackError("stack", f"unknown services {sorted(unknown)}", f"choose from {GROUPS}")
    s = fresh_platform()
    artifacts.ensure_all(s)
    postgres.prepare(s)
    s = fresh_platform()  # the local password may have just been generated
    postgres.service(s).start()
    postgres.provision(s)
    if "kafka" in groups:
        kafka.prepare(s)
        kafka.service(s).start()
    if "registry" in groups:
        registry.service(s).start()
    spark.write_conf(s)
    if "spark" in groups and spark_cds.ensure_archive(s, spark.base_java_options(s.spark_conf_dir),
                                                      lambda m: say(f"spark: {m}")):
        spark.write_conf(s)  # with the archive, built just now or already there
    if "spark" in groups and spark_standalone:
        for svc in spark.standalone_services(s):
            svc.start()
    if "airflow" in groups:
        airflow.prepare(s)
        for svc in airflow.services(s):
            svc.start()
    return s


def down(keep: Collection[str] = (), keep_streams: Collection[str] = ()) -> list[str]:
    """Stop everything: workers, Airflow, then any stream still running, then the rest.

    ``keep``: services to leave running, ``keep_streams``: streams to leave running (what
    was up before a benchmark brought up the rest; see k2ops/bench/platform_up.py).
    """
    from k2.contracts import STREAMS
    from k2.streams import lock_holder, stop_stream

    s = fresh_platform()
    stopped = []
    for svc in reversed(all_services(s)):
        if svc.name == "registry":
            # Airflow is down now, so no babysitter can restart a stream behind our back.
            for stream in STREAMS:
                if stream not in keep_streams and lock_holder(stream, s) is not None:
                    say(f"{stream}: stopping")
                    stop_stream(stream, s)
                    stopped.append(stream)
        if svc.name not in keep and svc.state() != "stopped":
            say(f"{svc.name}: stopping")
            svc.stop()
            stopped.append(svc.name)
    return stopped


def status() -> list[tuple[str, str, str, str]]:
    """(service, state, address, pid) rows; optional services appear only when used."""
    s = fresh_platform()
    rows = []
    for svc in all_services(s):
        state = svc.state()
        if svc.name in OPTIONAL and state == "stopped":
            continue
        pid = svc.pid()
        if state == "running" and not svc.is_ready():
            state = "starting/unhealthy"
        address = svc.address
        mode = workers.running_mode(s) if svc.name == "workers" and pid else None
        if mode is not None:  # live exchanges or the simulator, and at what rate
            address = f"{mode.describe()}: {address}"
        rows.append((svc.name, state, address, str(pid or "")))
    if not any(r[0].startswith("spark-") for r in rows):
        rows.insert(3, ("spark", "local", f"{s.spark_master} (conf {s.spark_conf_dir})", ""))
    return rows


def stream_rows(s: PlatformSettings) -> list[tuple[str, str, str, str]]:
    """One row per stream that has ever run: running or not, and its last batch."""
    import time

    from k2.contracts import STREAMS
    from k2.streams import lock_holder, read_progress, stream_dir

    rows = []
    for stream in STREAMS:
        if not stream_dir(stream, s).exists():
            continue
        pid = lock_holder(stream, s)
        progress = read_progress(stream, s)
        detail = "no batch yet"
        if progress:
            detail = (f"batch {progress.batch_id}, {progress.rows_in} rows, "
                      f"{time.time() - progress.updated_at:.0f}s ago")
        rows.append((stream, "running" if pid else "stopped", detail, str(pid or "")))
    return rows
