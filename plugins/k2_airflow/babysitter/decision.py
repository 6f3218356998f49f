"""What to do with one stream, from observations only (pure, unit-tested with fakes).

Data loss (offsets Kafka deleted before Bronze read them) is a verdict of its own,
``DATA_LOST``, but never a reason to act: the records are gone, and killing or
restarting a healthy stream would not bring them back. The loss rides along whatever
the stream needs otherwise (a crashed stream is still restarted); the watch task
reports it loudly (see :mod:`.watch`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Action(StrEnum):
    LEAVE = "leave"  # healthy, starting, or nothing we can safely do
    START = "start"  # no copy running: trigger the runner
    RESTART = "restart"  # running but stalled, no runner run: kill it, then trigger the runner
    KILL = "kill"  # running but stalled under a runner run: kill it; the run's retry restarts it


@dataclass(frozen=True)
class Observation:
    stream: str
    holder_pid: int | None  # pid holding the run lock; None: nobody; -1: unreadable
    holder_alive: bool
    progress_age_s: float | None  # seconds since progress.json was written; None: never
    running_since_s: float | None  # seconds since the holder took the lock (lock file mtime)
    source_has_new_data: bool | None  # None: unknown (source unreachable)
    source_detail: str
    runner_active_runs: int  # queued or running runs of the stream's runner DAG
    last_trigger_age_s: float | None  # seconds since the babysitter last triggered it
    has_checkpoint: bool
    new_lost_ranges: int = 0  # loss-ledger ranges not reported by an earlier babysitter run
    new_lost_offsets: int = 0
    loss_detail: str = ""  # the new ranges, for the log
    loss_ledger_size: int = 0  # ranges in the ledger when observed (what a report covers)


@dataclass(frozen=True)
class Decision:
    action: Action
    state: str  # one word for the UI: healthy, idle, starting, started, restarted, stalled...
    reason: str
    data_lost: str | None = None  # the loss to report, if the stream lost source data


def decide(obs: Observation, stall_after_s: float, start_grace_s: float) -> Decision:
    verdict = _decide_action(obs, stall_after_s, start_grace_s)
    if not obs.new_lost_ranges:
        return verdict
    lost = (f"{obs.new_lost_offsets} offsets in {obs.new_lost_ranges} range(s) were deleted by Kafka "
            f"before the stream read them: {obs.loss_detail}")
    if verdict.action is Action.LEAVE:
        return Decision(Action.LEAVE, "data_lost",
                        f"{lost}; not restarting for it (that cannot bring them back); "
                        f"otherwise {verdict.state}: {verdict.reason}", lost)
    return Decision(verdict.action, verdict.state, verdict.reason, lost)


def _decide_action(obs: Observation, stall_after_s: float, start_grace_s: float) -> Decision:
    if obs.holder_pid is not None and obs.holder_alive:
        # A fresh copy inherits the old copy's progress.json: count from whichever is newer.
        known = [a for a in (obs.progress_age_s, obs.running_since_s) if a is not None]
        quiet_for = min(known) if known else None
        if quiet_for is not None and quiet_for > stall_after_s:
            if obs.source_has_new_data:
                why = (f"pid {obs.holder_pid} has published no progress for {quiet_for:.0f}s "
                       f"(limit {stall_after_s:.0f}s) while its source has new data ({obs.source_detail}); ")
                if obs.runner_active_runs > 0:
                    return Decision(Action.KILL, "stalled",
                                    why + "killing it; its runner task's retry restarts it from its checkpoint")
                return Decision(Action.RESTART, "stalled",
                                why + "killing it and triggering its runner to restart it from its checkpoint")
            if obs.source_has_new_data is None:
                return Decision(
                    Action.LEAVE, "unknown",
                    f"pid {obs.holder_pid} quiet for {quiet_for:.0f}s but the source could not "
                    f"be read ({obs.source_detail}); not restarting blindly",
                )
            return Decision(Action.LEAVE, "idle",
                            f"pid {obs.holder_pid} running; no new source data ({obs.source_detail})")
        age = "no batch yet" if obs.progress_age_s is None else f"last progress {obs.progress_age_s:.0f}s ago"
        return Decision(Action.LEAVE, "healthy", f"pid {obs.holder_pid} running, {age}")

    if obs.runner_active_runs > 0:
        if obs.last_trigger_age_s is not None and obs.last_trigger_age_s < start_grace_s:
            return Decision(Action.LEAVE, "starting",
                            f"runner triggered {obs.last_trigger_age_s:.0f}s ago; waiting for it "
                            "to take the run lock")
        return Decision(
            Action.LEAVE, "waiting",
            f"{obs.runner_active_runs} runner run(s) queued or running but no process holds the "
            "lock (a crashed stream's task waits for its retry); not triggering another (if it "
            "persists, check the runner DAG's task log and that it is unpaused)",
        )

    if obs.holder_pid is not None:  # lock held by a pid we cannot see: foreign or unreadable
        return Decision(Action.LEAVE, "unknown",
                        f"run lock held by pid {obs.holder_pid} which is not visible here")

    if obs.has_checkpoint:
        return Decision(Action.START, "restarted",
                        "not running (crashed or stopped); restarting from its checkpoint")
    return Decision(Action.START, "started", "never started (no checkpoint); starting it")
