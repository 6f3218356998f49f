"""Service lifecycle with real processes: start, ready, crashed, stop, port conflicts."""

from __future__ import annotations

import os
import signal
import socket
import sys

import pytest

from k2ops.stack.errors import StackError
from k2ops.stack.process import CRASHED, RUNNING, STOPPED, Service, wait_for
from ports import free_port


def _http_service(tmp_path, port: int) -> Service:
    return Service(
        name="web",
        argv=[sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        run_dir=tmp_path / "run",
        log_file=tmp_path / "logs" / "web.log",
        ports=[("127.0.0.1", port)],
        ready=lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() is None,
        ready_timeout=20,
    )


def test_start_is_idempotent_and_stop_stops(tmp_path):
    svc = _http_service(tmp_path, free_port())
    assert svc.state() == STOPPED
    assert svc.start() is True
    try:
        assert svc.state() == RUNNING
        assert svc.start() is False  # already running: left alone
    finally:
        assert svc.stop() is True
    assert svc.state() == STOPPED
    assert svc.stop() is False


def test_killed_process_reports_crashed(tmp_path):
    svc = _http_service(tmp_path, free_port())
    svc.start()
    os.killpg(svc.pid(), signal.SIGKILL)
    assert wait_for(lambda: svc.state() == CRASHED, 10)
    svc.stop()  # clears the stale pid file
    assert svc.state() == STOPPED


def test_port_in_use_is_reported_with_service_name(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        with pytest.raises(StackError, match=rf"web: port 127.0.0.1:{port} is already in use"):
            _http_service(tmp_path, port).start()


def test_process_that_exits_during_start_shows_its_log(tmp_path):
    svc = Service(
        name="broken",
        argv=[sys.executable, "-c", "import sys; print('bad config: xyz'); sys.exit(3)"],
        run_dir=tmp_path / "run",
        log_file=tmp_path / "broken.log",
        ready=lambda: False,
        ready_timeout=20,
    )
    with pytest.raises(StackError) as err:
        svc.start()
    assert "exited with code 3" in str(err.value)
    assert "bad config: xyz" in str(err.value)
    assert svc.state() == STOPPED


def test_a_kraft_cluster_id_never_reads_as_an_option(monkeypatch):
    """kafka-storage's parser took an id starting with "-" for an option: the stack failed
    to start about once in 64 fresh installs."""
    import uuid

    from k2ops.stack import kafka

    draws = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x01" * 16)])  # "-A...", "AQE..."
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: next(draws))
    cluster_id = kafka.new_cluster_id()
    assert cluster_id == "AQEBAQEBAQEBAQEBAQEBAQ"
    assert len(cluster_id) == 22
