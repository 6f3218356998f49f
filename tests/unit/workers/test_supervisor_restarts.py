import io
import json
import os
import subprocess
import sys
import time

from k2.log import EventLog
from tests.fake_clock import FakeClock
from workers.supervisor import Child, Supervisor, simulator_env, worker_child


class TopOfJitter:
    """The jitter at its top, so each restart delay is exactly ``min(cap, base * 2**(n-1))``."""

    def uniform(self, low: float, high: float) -> float:
        return high


def exited(sup: Supervisor, child: Child) -> int:
    """Wait for the child process to exit (a real process: waited on, not slept on), then let
    the supervisor notice it at the fake clock's instant; the exit code."""
    code = child.process.wait(10)
    sup.check(sup.clock())
    assert child.process is None  # noticed, not restarted at once
    return code


def test_exited_child_is_restarted_with_growing_backoff():
    out, clock = io.StringIO(), FakeClock(0.0)
    child = Child("flaky", [sys.executable, "-c", "raise SystemExit(7)"], {})
    sup = Supervisor([child], EventLog(out), backoff_base_s=1, backoff_cap_s=4, rng=TopOfJitter(), clock=clock)
    sup.start(child)
    for restart_at in (1, 3, 7, 11):  # delays 1, 2, 4, then the 4 s cap
        assert exited(sup, child) == 7
        clock.set(restart_at - 0.001)
        sup.check(clock())
        assert child.process is None
        clock.set(restart_at)
        sup.check(clock())
        assert child.process is not None and child.started_at == restart_at
    assert child.restarts == 4 and child.history == [7, 7, 7, 7]
    exits = [json.loads(x) for x in out.getvalue().splitlines() if '"child_exited"' in x]
    assert [e["restart_in_s"] for e in exits] == [1, 2, 4, 4]
    assert {(e["reason"], e["exit_code"], e["ran_s"]) for e in exits} == {("crashed", 7, 0)}
    sup.shutdown()


def test_a_child_that_ran_a_healthy_while_restarts_at_the_base_delay_again():
    out, clock = io.StringIO(), FakeClock(0.0)
    child = Child("flaky", [sys.executable, "-c", "raise SystemExit(7)"], {})
    sup = Supervisor([child], EventLog(out), backoff_base_s=1, backoff_cap_s=4, rng=TopOfJitter(), clock=clock)
    sup.start(child)
    exited(sup, child)  # delay 1
    clock.set(1)
    sup.check(clock())
    exited(sup, child)  # a second short run: delay 2
    clock.set(3)
    sup.check(clock())
    clock.set(3 + 60)  # this run lasts the healthy minute before its exit is noticed
    exited(sup, child)
    delays = [json.loads(x)["restart_in_s"] for x in out.getvalue().splitlines() if '"child_exited"' in x]
    assert delays == [1, 2, 1] and child.restart_at == 64
    sup.shutdown()


def test_shutdown_forwards_sigterm_and_reports_exit_codes():
    out = io.StringIO()
    sleeper = Child("sleeper", [sys.executable, "-c", "import time; time.sleep(30)"], {})
    sup = Supervisor([sleeper], EventLog(out), grace_s=5)
    sup.start(sleeper)
    started = time.monotonic()
    assert sup.shutdown() == 0
    assert time.monotonic() - started < 5
    assert sleeper.process.returncode == -15
    stopped = [json.loads(x) for x in out.getvalue().splitlines() if '"supervisor_stopped"' in x]
    assert stopped[0]["exit_codes"] == {"sleeper": -15}


def test_simulator_env_points_workers_at_localhost():
    env = simulator_env({"K2_BINANCE_URLS": "wss://stream.binance.com:9443"}, 18765)
    assert env["K2_BINANCE_URLS"] == "ws://127.0.0.1:18765"
    assert env["K2_KRAKEN_URLS"] == "ws://127.0.0.1:18765/v2"
    assert env["K2_WORKERS_REFRESH_SYMBOLS"] == "false"
    assert env["K2_BINANCE_REST_URL"] == "http://127.0.0.1:18765"  # backfill from the simulator


def config_error_child(name: str, tmp_path, error: str) -> Child:
    """A child that exits like a worker with an unusable setting: reason file, then code 78."""
    reason = tmp_path / f"{name}.reason"
    script = f"import pathlib, sys; pathlib.Path({str(reason)!r}).write_text({error!r}); sys.exit(78)"
    return Child(name, [sys.executable, "-c", script], {}, reason_file=reason)


def test_a_configuration_error_is_not_restarted_and_names_the_setting(tmp_path):
    out = io.StringIO()
    bad = config_error_child("binance", tmp_path, "K2_BINANCE_SYMBOLS: 'NOPE' is not in the symbol table")
    sleeper = Child("kraken", [sys.executable, "-c", "import time; time.sleep(30)"], {})
    clock = FakeClock()
    sup = Supervisor([bad, sleeper], EventLog(out), backoff_base_s=0.01, grace_s=5, clock=clock)
    sup.start(bad)
    sup.start(sleeper)
    bad.process.wait(10)
    for _ in range(3):
        clock.advance(100)  # long past any backoff
        sup.check(clock())
    assert (bad.history, bad.restarts, bad.process, bad.gave_up) == ([78], 0, None, True)
    assert not sup.stopping  # the other worker keeps running
    (event,) = [json.loads(x) for x in out.getvalue().splitlines() if '"child_config_error"' in x]
    assert (event["child"], event["settings"], event["level"]) == ("binance", ["K2_BINANCE_SYMBOLS"], "error")
    assert event["error"] == "K2_BINANCE_SYMBOLS: 'NOPE' is not in the symbol table"
    assert "fix K2_BINANCE_SYMBOLS" in event["action"]
    assert sup.shutdown() == 0 and sleeper.process.returncode == -15


def test_the_supervisor_stops_with_code_78_when_every_worker_has_a_configuration_error(tmp_path):
    out = io.StringIO()
    children = [config_error_child(name, tmp_path, "K2_WORKERS_MAX_FRAME_BYTES: must be 4096-67108864 bytes, got 1")
                for name in ("binance", "kraken")]
    sup = Supervisor(children, EventLog(out), backoff_base_s=0.01, clock=FakeClock())
    for child in children:
        sup.start(child)
        child.process.wait(10)
    sup.check(sup.clock())
    assert sup.stopping and [c.restarts for c in children] == [0, 0]
    assert sup.shutdown() == 78
    assert '"supervisor_stopping"' in out.getvalue()


def test_a_worker_with_an_unusable_setting_exits_78_and_writes_why(tmp_path):
    reason = tmp_path / "reason"
    env = {**os.environ, "K2_WORKERS_MAX_FRAME_BYTES": "1"}
    done = subprocess.run([sys.executable, "-m", "workers.run", "kraken", "--exit-reason-file", str(reason)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 78
    assert reason.read_text() == "K2_WORKERS_MAX_FRAME_BYTES: must be 4096-67108864 bytes, got 1"
    (line,) = [json.loads(x) for x in done.stderr.splitlines() if '"configuration_error"' in x]
    assert line["exit_code"] == 78


def test_worker_children_get_a_fresh_reason_file():
    child = worker_child("binance", {})
    assert child.argv[-2:] == ["--exit-reason-file", str(child.reason_file)]
    child.reason_file.write_text("stale")
    sup = Supervisor([child], EventLog(io.StringIO()), grace_s=5)
    child.argv = [sys.executable, "-c", "import time; time.sleep(30)"]
    sup.start(child)
    assert not child.reason_file.exists()
    sup.shutdown()
