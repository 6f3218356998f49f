"""PostgreSQL from Debian's packages: the Iceberg catalog, registry storage, Airflow metadata.

One cluster under ``$K2_HOME/data/postgres``, listening on 127.0.0.1 only, with a
password for the ``k2`` role generated on first start into ``$K2_HOME/secrets``.
PostgreSQL refuses to run as root, so when we are root it runs as the ``postgres``
user that Debian's package creates.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
from pathlib import Path

from k2.settings import PlatformSettings
from k2ops.stack.errors import StackError
from k2ops.stack.private_files import ensure_secret
from k2ops.stack.process import Service, port_in_use

REGISTRY_DB = "registry"
AIRFLOW_DB = "airflow"
RUN_AS = "postgres"


def bin_dir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3]))
    if not found:
        raise StackError(
            "postgres",
            "the PostgreSQL server is not installed",
            "run `make setup` (it runs `apt-get install -y postgresql`)",
        )
    return found[-1].parent


def _data_dir(s: PlatformSettings) -> Path:
    return s.data_dir / "postgres"


def _socket_dir(s: PlatformSettings) -> Path:
    return s.run_dir / "pg-socket"


def _owned_by_runner(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        user = pwd.getpwnam(RUN_AS)
        os.chown(path, user.pw_uid, user.pw_gid)


def _as_runner(argv: list[str]) -> list[str]:
    return ["runuser", "-u", RUN_AS, "--", *argv] if os.geteuid() == 0 else argv


def ensure_password(s: PlatformSettings) -> None:
    """Generate the local password once (0600), unless K2_PG_PASSWORD is set."""
    if os.environ.get("K2_PG_PASSWORD"):
        return
    ensure_secret(s.home_path / "secrets" / "pg_password", lambda: secrets.token_urlsafe(24) + "\n")


def init_cluster(s: PlatformSettings) -> None:
    data = _data_dir(s)
    if (data / "PG_VERSION").exists():
        return
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(RUN_AS)
        except KeyError:
            raise StackError("postgres", f"the '{RUN_AS}' user does not exist",
                             "reinstall Debian's postgresql package") from None
        # The runner must be able to traverse every parent folder of the data dir.
        for parent in reversed(data.parents):
            if parent.exists() and not os.stat(parent).st_mode & 0o001:
                raise StackError("postgres", f"{parent} is not traversable by '{RUN_AS}'",
                                 f"chmod o+x {parent}, or set K2_HOME elsewhere")
    s.data_dir.mkdir(parents=True, exist_ok=True)
    _owned_by_runner(data)
    log = s.logs_dir / "postgres-initdb.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        _as_runner([str(bin_dir() / "initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8",
                    "--auth-local=trust", "--auth-host=scram-sha-256", "--no-instructions"]),
        capture_output=True, text=True,
    )
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        shutil.rmtree(data, ignore_errors=True)
        raise StackError("postgres", "initdb failed", f"see {log}")


def service(s: PlatformSettings) -> Service:
    socket_dir = _socket_dir(s)
    return Service(
        name="postgres",
        argv=[str(bin_dir() / "postgres"), "-D", str(_data_dir(s)), "-p", str(s.pg_port),
              "-k", str(socket_dir), "-c", f"listen_addresses={s.bind_host}",
              "-c", "max_connections=400", "-c", "shared_buffers=128MB",
              "-c", "fsync=on", "-c", "log_min_messages=warning"],
        run_dir=s.run_dir,
        log_file=s.logs_dir / "postgres.log",
        address=f"{s.bind_host}:{s.pg_port}",
        ports=[(s.bind_host, s.pg_port)],
        ready=lambda: port_in_use(s.bind_host, s.pg_port) and _psql(s, "SELECT 1", check=False) == "1",
        ready_timeout=60,
        stop_signal=signal.SIGINT,  # "fast" shutdown; SIGTERM waits for every client to leave
        run_as=RUN_AS,
        hint="is another PostgreSQL using the data folder? check the log",
    )


def prepare(s: PlatformSettings) -> None:
    """Before start: password, cluster, socket folder."""
    ensure_password(s)
    init_cluster(s)
    _owned_by_runner(_socket_dir(s))
    log = s.logs_dir / "postgres.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.touch()
    if os.geteuid() == 0:
        user = pwd.getpwnam(RUN_AS)
        os.chown(log, user.pw_uid, user.pw_gid)


def _psql(s: PlatformSettings, sql: str, database: str = "postgres", check: bool = True) -> str:
    proc = subprocess.run(
        [str(bin_dir() / "psql"), "-h", str(_socket_dir(s)), "-p", str(s.pg_port), "-U", "postgres",
         "-d", database, "-tAq", "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True, text=True,
    )
    if check and proc.returncode != 0:
        raise StackError("postgres", f"SQL failed: {sql[:80]}...: {proc.stderr.strip()}")
    return proc.stdout.strip()


def provision(s: PlatformSettings) -> None:
    """After start: the k2 role (password kept in sync) and one database per user."""
    password = s.pg_password.reveal().replace("'", "''")
    role = s.pg_user
    if _psql(s, f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'") != "1":
        _psql(s, f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'")
    else:
        _psql(s, f"ALTER ROLE \"{role}\" LOGIN PASSWORD '{password}'")
    for db in (s.catalog_db, REGISTRY_DB, AIRFLOW_DB):
        if _psql(s, f"SELECT 1 FROM pg_database WHERE datname = '{db}'") != "1":
            _psql(s, f'CREATE DATABASE "{db}" OWNER "{role}"')
