import io
import json
import random
import sys
import time

from workers.log import EventLog
from workers.supervisor import Child, Supervisor, simulator_env


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
