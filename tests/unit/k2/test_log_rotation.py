"""Stack service logs rotate by size: bounded files, whole lines, nothing reordered."""

from __future__ import annotations

import os
import signal
import sys
import textwrap

from k2ops.stack.process import RotatingLog, Service, pump, wait_for


def _lines(n: int, start: int = 0) -> bytes:
    return b"".join(b"line %05d\n" % i for i in range(start, start + n))  # 11 bytes each


def _files(path):
    """The log's files oldest first: .N .. .1, then the current one."""
    rotated = sorted(path.parent.glob(path.name + ".*"), key=lambda p: -int(p.suffix[1:]))
    return [*rotated, path]


def test_rotates_at_the_size_limit_keeping_n_files_of_whole_lines(tmp_path):
    path = tmp_path / "svc.log"
    log = RotatingLog(path, max_bytes=110, backups=3)  # 10 lines per file
    for i in range(0, 100, 7):  # chunks that do not line up with the files
        log.write(_lines(min(7, 100 - i), i))
    log.close()

    files = _files(path)
    assert [p.name for p in files] == ["svc.log.3", "svc.log.2", "svc.log.1", "svc.log"]
    assert all(p.stat().st_size <= 110 for p in files)
    assert all(p.read_bytes().endswith(b"\n") for p in files)
    # 100 lines, 10 per file: the 4 files kept hold exactly the last 40, in order.
    assert b"".join(p.read_bytes() for p in files) == _lines(40, 60)


def test_appends_to_an_existing_log_and_counts_its_size(tmp_path):
    path = tmp_path / "svc.log"
    path.write_bytes(_lines(9))
    log = RotatingLog(path, max_bytes=110, backups=2)
    log.write(_lines(2, 9))
    log.close()
    assert (tmp_path / "svc.log.1").read_bytes() == _lines(10)
    assert path.read_bytes() == _lines(1, 10)


def test_a_line_longer_than_a_file_is_kept_whole(tmp_path):
    path = tmp_path / "svc.log"
    log = RotatingLog(path, max_bytes=16, backups=2)
    log.write(b"short\n" + b"x" * 40 + b"\nend\n")
    log.close()
    assert (tmp_path / "svc.log.2").read_bytes() == b"short\n"
    assert (tmp_path / "svc.log.1").read_bytes() == b"x" * 40 + b"\n"
    assert path.read_bytes() == b"end\n"


def test_pump_copies_a_pipe_until_its_writer_closes_it(tmp_path):
    read_end, write_end = os.pipe()
    os.write(write_end, _lines(25))
    os.close(write_end)
    pump(read_end, RotatingLog(tmp_path / "p.log", max_bytes=110, backups=5), chunk=17)
    os.close(read_end)
    assert b"".join(p.read_bytes() for p in _files(tmp_path / "p.log")) == _lines(25)


CHATTY = textwrap.dedent("""
    import signal, sys, time
    def bye(*_):
        print("stopping cleanly", flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, bye)
    for i in range(2000):
        print(f"line {i:05d}", flush=True)
    print("all written", flush=True)
    while True:
        time.sleep(1)
""")


def test_a_running_service_log_rotates_and_keeps_its_last_words(tmp_path):
    log_file = tmp_path / "logs" / "chatty.log"
    svc = Service(name="chatty", argv=[sys.executable, "-c", CHATTY], run_dir=tmp_path / "run",
                  log_file=log_file, log_max_bytes=4096, log_backups=3, stop_signal=signal.SIGTERM)
    svc.start()
    try:
        assert wait_for(lambda: "all written" in svc.tail(1), 20, 0.1)
    finally:
        svc.stop()
    # The writer is not in the service's process group: it outlives the stop signal and
    # writes what the service printed while stopping, then exits at end of input.
    assert wait_for(lambda: log_file.read_text().endswith("stopping cleanly\n"), 10, 0.1)
    files = _files(log_file)
    assert [p.name for p in files] == ["chatty.log.3", "chatty.log.2", "chatty.log.1", "chatty.log"]
    assert all(p.stat().st_size <= 4096 for p in files)
    text = "".join(p.read_text() for p in files)
    assert text.endswith("line 01999\nall written\nstopping cleanly\n")
