import io
import json
import os
import random
import subprocess
import sys
import time

from k2.log import EventLog
from workers.supervisor import Child, Supervisor, simulator_env, worker_child


def test_exited_child_is_restarted_with_growing_backoff():
    out = io.StringIO()
    child = Child("flaky", [sys.executable, "-c", "raise SystemExit(7)"], {})
    sup = Supervisor([child], EventLog(out), backoff_base_s=0.05, backoff_cap_s=0.2, rng=random.Random(1))
    sup.start(child)
    deadline = time.monotonic() + 10
    while child.restarts < 3 and time.monotonic() < deadline:
        sup.check(time.monotonic())
        time.sleep(0.01)
    assert child.restarts == 3
    assert child.history[:3] == [7, 7, 7]
    exits = [json.loads(x) for x in out.getvalue().splitlines() if '"child_exited"' in x]
    delays = [e["restart_in_s"] for e in exits]
    assert delays[0] <= 0.05 and delays[1] <= 0.1 and delays[2] <= 0.2 and delays[2] > delays[0]
    assert exits[0]["reason"] == "crashed" and exits[0]["exit_code"] == 7
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
    sup = Supervisor([bad, sleeper], EventLog(out), backoff_base_s=0.01, grace_s=5)
    sup.start(bad)
    sup.start(sleeper)
    bad.process.wait(10)
    for _ in range(3):
        sup.check(time.monotonic() + 100)  # long past any backoff
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
    sup = Supervisor(children, EventLog(out), backoff_base_s=0.01)
    for child in children:
        sup.start(child)
        child.process.wait(10)
    sup.check(time.monotonic())
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
