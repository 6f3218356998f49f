"""``StreamWatchOperator``: one babysitter task per stream; its log is the stream's status."""

from __future__ import annotations

import logging
from typing import Any

from airflow.providers.standard.operators.branch import BaseBranchOperator

from k2.contracts import runner_dag_id
from k2.streams import loss_file
from k2_airflow.babysitter import control, decision, probes
from k2_airflow.defaults import task_settings

log = logging.getLogger("k2.airflow.babysitter")


class StreamWatchOperator(BaseBranchOperator):
    """Observe a stream, log its state and why, kill it if stalled; branch to its start task.

    A stalled stream under a live runner run is only killed: the run's task fails and
    its retry starts the stream again (triggering as well would queue a second run).

    Returns the start task's id when the runner must be triggered, else nothing (the
    start task is then skipped, which the grid shows as "left alone").

    Data loss new since the last run is logged as ``STREAM <name>: DATA_LOST - ...`` at
    ERROR and then fails this task, once, without retry: a red task in the grid is the
    loud report, and the stream itself is left running. When the stream must also be
    started, the start wins (failing here would skip it) and the loss stays unreported
    until the next run, which fails then.
    """

    template_fields = ("stall_minutes", "start_grace_minutes")

    def __init__(self, *, stream: str, start_task_id: str, stall_minutes: Any = 10,
                 start_grace_minutes: Any = 5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stream = stream
        self.start_task_id = start_task_id
        self.stall_minutes = stall_minutes
        self.start_grace_minutes = start_grace_minutes

    def choose_branch(self, context: Any) -> str | list[str] | None:
        settings = task_settings(f"watch {self.stream}")
        active = context["ti"].get_dr_count(
            dag_id=runner_dag_id(self.stream), states=["queued", "running"])
        obs = probes.observe(self.stream, settings, runner_active_runs=active)
        verdict = decision.decide(obs, stall_after_s=float(self.stall_minutes) * 60,
                                  start_grace_s=float(self.start_grace_minutes) * 60)
        log.info("%s: observed %s", self.stream, obs)
        if verdict.action in (decision.Action.RESTART, decision.Action.KILL):
            if not control.kill_stream(self.stream, obs.holder_pid, settings):
                raise RuntimeError(f"{self.stream}: killed pid {obs.holder_pid} but the run lock "
                                   "is still held after 60s; check the process by hand")
        log.info("STREAM %s: %s (%s) - %s", self.stream, verdict.state.upper(),
                 verdict.action.value, verdict.reason)
        context["ti"].xcom_push(key="state", value=verdict.state)
        if verdict.data_lost:
            log.error("STREAM %s: DATA_LOST - %s (ledger: %s; `k2 streams status` shows the totals)",
                      self.stream, verdict.data_lost, loss_file(self.stream, settings))
        if verdict.action in (decision.Action.LEAVE, decision.Action.KILL):
            if verdict.data_lost:
                from airflow.sdk.exceptions import AirflowFailException

                probes.mark_losses_reported(self.stream, settings, obs.loss_ledger_size)
                raise AirflowFailException(f"{self.stream}: DATA_LOST - {verdict.data_lost}")
            return None
        probes.write_state(self.stream, settings, action=verdict.action.value, state=verdict.state)
        return self.start_task_id
