"""Secret files are 0600 (their folder 0700) from their first byte, whatever the umask.

The stack's writers run in a child process with umask 0, so a file created with the
default mode would be 0666. With a file-size limit of 0 the write fails right after
the file is created: what it leaves behind is what a reader could have seen then.
"""

from __future__ import annotations

import os
import resource
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from k2ops.stack import postgres
from k2ops.stack.private_files import ensure_secret, write_private

# Each writer of a secret file, with the folder it writes into (under $K2_HOME).
WRITERS = {
    "pg_password": ("from k2ops.stack import postgres; postgres.ensure_password(s)", "secrets"),
    "airflow secrets": ("from k2ops.stack import airflow; airflow.environment(s)", "secrets"),
    "airflow login": ("from k2ops.stack import airflow; airflow.write_login(s)", "airflow"),
    "pg_hba/pg_ident": ("from k2ops.stack import postgres; postgres.write_auth_config(s)", "data/postgres"),
}


def _run_writer(code: str, home: Path, max_file_size: int | None) -> subprocess.CompletedProcess:
    (home / "data" / "postgres").mkdir(parents=True)  # an existing cluster's folder

    def limits() -> None:
        os.umask(0)
        if max_file_size is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_size, max_file_size))

    env = {k: v for k, v in os.environ.items() if not k.startswith(("K2_", "AIRFLOW__"))}
    env["K2_HOME"] = str(home)
    script = f"from k2.settings import fresh_platform; s = fresh_platform(); {code}"
    return subprocess.run([sys.executable, "-c", script], env=env, preexec_fn=limits,
                          capture_output=True, text=True, timeout=60)


def _modes(folder: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} if folder.exists() else {}


@pytest.mark.parametrize("writer", WRITERS)
def test_each_secret_writer_makes_0600_files_in_a_private_folder(tmp_path, writer):
    code, folder = WRITERS[writer]
    proc = _run_writer(code, tmp_path, max_file_size=None)
    assert proc.returncode == 0, proc.stderr
    written = _modes(tmp_path / folder)
    assert written and set(written.values()) == {0o600}, written
    if folder == "secrets":
        assert stat.S_IMODE((tmp_path / folder).stat().st_mode) == 0o700


@pytest.mark.parametrize("writer", WRITERS)
def test_a_write_that_fails_leaves_nothing_others_can_read(tmp_path, writer):
    code, folder = WRITERS[writer]
    proc = _run_writer(code, tmp_path, max_file_size=0)
    assert proc.returncode != 0 and "File too large" in proc.stderr, proc.stderr
    assert _modes(tmp_path / folder) == {}  # no half-written file, not even a 0600 one


def test_write_private_replaces_or_keeps_the_first_value(tmp_path):
    path = tmp_path / "key"
    old = os.umask(0)
    try:
        assert write_private(path, "first", replace=False) is True
        assert write_private(path, "second", replace=False) is False
        assert path.read_text() == "first"
        assert write_private(path, "third") is True
    finally:
        os.umask(old)
    assert path.read_text() == "third"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["key"]  # no temporary file left
    assert ensure_secret(tmp_path / "made" / "once", lambda: "v1\n") == "v1"
    assert ensure_secret(tmp_path / "made" / "once", lambda: "v2\n") == "v1"
    assert stat.S_IMODE((tmp_path / "made").stat().st_mode) == 0o700


def test_auth_config_admits_the_socket_only_to_the_runner_as_superuser():
    hba = [line.split() for line in postgres.hba_conf().splitlines() if not line.startswith("#")]
    assert [line for line in hba if line[0] == "local"] == [
        ["local", "all", "all", "peer", f"map={postgres.IDENT_MAP}"],
        ["local", "replication", "all", "peer", f"map={postgres.IDENT_MAP}"],
    ]
    assert {line[-1] for line in hba if line[0] == "host"} == {"scram-sha-256"}
    assert not any("trust" in line for line in hba)
    ident = [line.split() for line in postgres.ident_conf("alice").splitlines() if not line.startswith("#")]
    assert ident == [[postgres.IDENT_MAP, "alice", postgres.SUPERUSER]]


def test_scram_verifier_has_postgres_format_and_hides_the_password():
    verifier = postgres.scram_verifier("s3cret-pass", salt=b"0123456789abcdef")
    head, keys = verifier.split("$", 1)[1].split("$")
    assert verifier.startswith("SCRAM-SHA-256$4096:") and head == "4096:MDEyMzQ1Njc4OWFiY2RlZg=="
    stored_key, server_key = keys.split(":")
    assert len(stored_key) == len(server_key) == 44  # base64 of 32 bytes
    assert "s3cret-pass" not in verifier
    assert postgres.scram_verifier("s3cret-pass") != verifier  # a fresh salt each time
