"""Bring the whole platform up for a benchmark, with the simulator at a given rate, and
leave it afterwards as it was found.

`k2 up --simulator --simulator-rate R` (:func:`k2ops.platform.up`) starts whatever is not
running and leaves running services alone, workers included. So workers that read the
live exchanges, or the simulator at another rate, are stopped first and started again
as they were at the end. Services and streams the benchmark started are stopped at the
end, except streams while Airflow keeps running: its babysitter would start them again.
Each step is one line on stderr.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from k2.settings import PlatformSettings
from k2ops.stack import progress
from k2ops.stack.workers import WorkersMode

# Its steps read apart from the `k2 up` lines it causes (k2.stack.progress.say).
say = partial(progress.say, source="k2 bench platform")


@dataclass(frozen=True)
class Found:
    """What ran before the benchmark touched anything."""

    services: frozenset[str]  # services running
    streams: frozenset[str]  # streams holding their run lock
    workers: WorkersMode | None  # how the workers ran; None when they did not

    def describe(self) -> str:
        if not self.services:
            return "nothing running"
        workers = f"workers read {self.workers.describe()}" if self.workers else "no workers"
        return (f"running: {', '.join(sorted(self.services))}; streams: "
                f"{', '.join(sorted(self.streams)) or 'none'}; {workers}")


def observe(s: PlatformSettings) -> Found:
    from k2.contracts import STREAMS
    from k2.streams import lock_holder
    from k2ops.stack import services
    from k2ops.stack.workers import running_mode

    running = frozenset(svc.name for svc in services.all_services(s) if svc.state() == "running")
    streams = frozenset(st for st in STREAMS if lock_holder(st, s) is not None)
    return Found(running, streams, running_mode(s))


@dataclass(frozen=True)
class Restore:
    """What to do at the end so the platform is as it was found."""

    keep: frozenset[str]  # services to leave running
    keep_streams: frozenset[str]
    restart_workers: WorkersMode | None  # start the workers again like this
    everything_down: bool  # nothing ran before: `k2 down`


def restore_plan(found: Found, wanted: WorkersMode) -> Restore:
    from k2.contracts import STREAMS

    airflow_kept = any(name.startswith("airflow-") for name in found.services)
    # With Airflow kept its babysitter restarts any stream we stop: leave them all.
    keep_streams = frozenset(STREAMS) if airflow_kept else found.streams
    restart = found.workers if found.workers is not None and found.workers != wanted else None
    return Restore(keep=found.services, keep_streams=keep_streams, restart_workers=restart,
                   everything_down=not found.services)


def bring_up(s: PlatformSettings, found: Found, rate: float) -> PlatformSettings:
    """`k2 up --simulator --simulator-rate rate`, stopping workers that run otherwise first."""
    from k2ops import platform
    from k2ops.stack import workers

    wanted = WorkersMode(simulator=True, rate=rate)
    if found.workers is not None and found.workers != wanted:
        say(f"the workers read {found.workers.describe()}: stopping them to run {wanted.describe()} "
            "(started again as they were at the end)")
        workers.service(s).stop()
    say(f"k2 up --simulator --simulator-rate {rate:g} (found {found.describe()})")
    return platform.up(simulator=True, simulator_rate=rate)


def restore(s: PlatformSettings, found: Found, rate: float) -> None:
    from k2.contracts import STREAMS
    from k2ops.stack import services, workers

    plan = restore_plan(found, WorkersMode(simulator=True, rate=rate))
    if plan.everything_down:
        say("nothing ran before the benchmark: stopping the whole platform (k2 down)")
        services.down()
        return
    services_started = [svc.name for svc in services.all_services(s)
                        if svc.name not in plan.keep and svc.state() != "stopped"]
    streams_started = sorted(set(STREAMS) - plan.keep_streams)
    say(f"stopping what the benchmark started (services: {', '.join(services_started) or 'none'}; "
        f"streams: {', '.join(streams_started) or 'none'}), leaving running what ran before")
    services.down(keep=plan.keep, keep_streams=plan.keep_streams)
    if plan.restart_workers is not None:
        say(f"starting the workers again as found: reading {plan.restart_workers.describe()}")
        svc = workers.service(s)
        svc.stop()
        workers.service(s, simulator=plan.restart_workers.simulator,
                        simulator_rate=plan.restart_workers.rate).start()
