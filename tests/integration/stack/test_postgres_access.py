"""Who may use the local PostgreSQL, and where its passwords show (issue 16).

Runs its own `k2 stack up postgres` (own $K2_HOME, own port) so that it sees a cluster
made from nothing, its secrets generated and its role created, and stops it afterwards.
While the stack starts, a thread (process_watch.Watcher) samples what `ps -eo args` shows
(every process's /proc/PID/cmdline) and the modes of the secret files.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from k2.config import load
from k2.settings import PlatformSettings
from k2ops.stack import postgres
from ports import free_port
from process_watch import Watcher, leaks, stack_secrets

pytestmark = pytest.mark.integration

K2 = str(Path(sys.executable).parent / "k2")




class OwnStack:
    """A PostgreSQL-only stack in a folder of its own."""

    def __init__(self) -> None:
        home = Path(tempfile.mkdtemp(prefix="k2-pg-access-"))
        home.chmod(0o755)  # PostgreSQL's runner must traverse it
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("K2_") or k == "K2_CACHE_DIR"}
        self.env.update({"K2_HOME": str(home), "K2_PG_PORT": str(free_port()),
                         "K2_KAFKA_PORT": str(free_port()), "K2_KAFKA_CONTROLLER_PORT": str(free_port()),
                         "K2_REGISTRY_PORT": str(free_port()), "K2_AIRFLOW_PORT": str(free_port())})
        self.home = home
        self.outputs: list[str] = []  # what `k2 stack up` printed
        self.first_up: Watcher | None = None  # what the watch saw during the first `up`

    @property
    def settings(self) -> PlatformSettings:
        return load(PlatformSettings, self.env)  # after `up`: with the generated password

    @property
    def socket_dir(self) -> Path:
        return self.settings.run_dir / "pg-socket"

    def k2(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([K2, *args], env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def up(self) -> None:
        proc = self.k2("stack", "up", "postgres")
        out, _ = proc.communicate(timeout=300)
        self.outputs.append(out)
        assert proc.returncode == 0, out

    def psql(self, *args: str, user: str | None = None, **kwargs) -> subprocess.CompletedProcess:
        argv = [str(postgres.bin_dir() / "psql"), "-X", "-w", "-p", str(self.settings.pg_port), *args]
        if user == postgres.runner():
            argv = postgres._as_runner(argv)
        elif user is not None:  # another OS user: we must be root (as `make test` is)
            argv = ["runuser", "-u", user, "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, cwd="/", timeout=60, **kwargs)

    def secrets_in_logs(self, *secrets: str) -> list[str]:
        outputs = {f"`k2 stack up` output {i}": out for i, out in enumerate(self.outputs)}
        return leaks(secrets, outputs, self.home / "logs")


@pytest.fixture(scope="module")
def own_stack():
    stack = OwnStack()
    try:
        with Watcher(stack.home / "secrets") as watcher:
            stack.up()
        stack.first_up = watcher
        yield stack
    finally:
        down = stack.k2("stack", "down")
        down.communicate(timeout=120)
        shutil.rmtree(stack.home, ignore_errors=True)


def test_another_os_user_cannot_use_the_socket(own_stack):
    sock = own_stack.socket_dir
    port = own_stack.settings.pg_port
    assert (sock / f".s.PGSQL.{port}").is_socket()  # it is there: only access is refused
    info = sock.stat()
    assert stat.S_IMODE(info.st_mode) == 0o700
    assert info.st_uid == pwd.getpwnam(postgres.runner()).pw_uid
    denied = own_stack.psql("-h", str(sock), "-U", "postgres", "-d", "postgres", "-tAc", "SELECT 1",
                            user="nobody")
    assert denied.returncode != 0 and denied.stdout == ""
    assert "Permission denied" in denied.stderr, denied.stderr
    assert "No such file" not in denied.stderr
    # Nor over TCP without the password.
    no_password = own_stack.psql("-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-tAc",
                                 "SELECT 1", user="nobody")
    assert no_password.returncode != 0 and "password" in no_password.stderr, no_password.stderr


def test_the_socket_admits_only_the_runner_as_superuser(own_stack):
    sock = str(own_stack.socket_dir)
    runner = postgres.runner()
    if runner != "root":
        # root enters any folder: peer authentication alone must refuse it (not in the map).
        refused = own_stack.psql("-h", sock, "-U", "postgres", "-d", "postgres", "-tAc", "SELECT 1")
        assert "Peer authentication failed" in refused.stderr, refused.stderr
    as_k2 = own_stack.psql("-h", sock, "-U", "k2", "-d", "postgres", "-tAc", "SELECT 1", user=runner)
    assert "Peer authentication failed" in as_k2.stderr, as_k2.stderr
    admin = own_stack.psql("-h", sock, "-U", "postgres", "-d", "postgres", "-tAc",
                           "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database",
                           user=runner)
    assert admin.returncode == 0, admin.stderr
    s = own_stack.settings
    assert set(admin.stdout.strip().split(",")) >= {s.catalog_db, postgres.REGISTRY_DB, postgres.AIRFLOW_DB}
    # Every K2 component logs in as k2 over TCP with the generated password.
    component = own_stack.psql("-h", s.pg_host, "-U", s.pg_user, "-d", s.catalog_db, "-tAc",
                               "SELECT current_user", env={**os.environ, "PGPASSWORD": s.pg_password.reveal()})
    assert component.returncode == 0 and component.stdout.strip() == s.pg_user, component.stderr


def test_secret_files_are_private_from_their_creation(own_stack):
    seen = dict(own_stack.first_up.modes)
    assert {"pg_password", "airflow_fernet_key", "airflow_jwt_secret", "airflow_api_secret"} <= set(seen)
    assert seen.pop("secrets/") == {0o700}
    assert {name: modes for name, modes in seen.items() if modes != {0o600}} == {}
    for path in (own_stack.home / "secrets").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    data = own_stack.settings.data_dir / "postgres"
    for name in ("pg_hba.conf", "pg_ident.conf"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name


def test_no_password_in_ps_or_logs_while_the_stack_starts(own_stack):
    """Both role statements run under the watch: CREATE at the first `up`, ALTER at a second
    one, which a transaction locking the roles' catalog keeps waiting until the watch saw it."""
    s = own_stack.settings
    password = s.pg_password.reveal()
    holder = subprocess.Popen(
        postgres._as_runner([str(postgres.bin_dir() / "psql"), "-X", "-q", "-h", str(own_stack.socket_dir),
                             "-p", str(s.pg_port), "-U", "postgres", "-d", "postgres"]),
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd="/",
    )
    waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
    try:
        holder.stdin.write("BEGIN; LOCK TABLE pg_authid IN SHARE MODE;\n")  # ALTER ROLE waits
        holder.stdin.flush()
        with Watcher(own_stack.home / "secrets") as watcher:
            up = own_stack.k2("stack", "up", "postgres")
            deadline = time.monotonic() + 60
            while postgres._psql(s, waiting) == "0":  # the stack's ALTER ROLE is not waiting yet
                assert time.monotonic() < deadline and up.poll() is None, "ALTER ROLE never waited"
                time.sleep(0.1)
            time.sleep(0.5)  # the blocked psql stays in the process table meanwhile
            holder.stdin.write("COMMIT;\n")
            holder.stdin.close()
            out, _ = up.communicate(timeout=120)
        own_stack.outputs.append(out)
        assert up.returncode == 0, out
    finally:
        holder.kill()
        holder.wait()
    stored = postgres._psql(s, f"SELECT rolpassword FROM pg_authid WHERE rolname = '{s.pg_user}'")
    assert stored.startswith("SCRAM-SHA-256$")
    args = own_stack.first_up.args | watcher.args
    ours = [a for a in args if str(own_stack.home) in a]
    assert any("/psql " in a for a in ours), "the watch saw none of the stack's psql runs"
    secrets = [password, stored, *stack_secrets(s)]  # with Airflow's, generated by `up` too
    leaked = [a for a in args if any(secret in a for secret in secrets)]
    leaked += [a for a in ours if "password" in a.lower()]
    assert leaked == []
    assert own_stack.secrets_in_logs(*secrets) == []
