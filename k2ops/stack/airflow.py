"""Airflow 3 for the local stack: api-server, scheduler, dag-processor, triggerer.

Configured entirely from here (environment variables, not clicks): metadata in the
``airflow`` PostgreSQL database, LocalExecutor (several long tasks at once), DAGs from
``dags/`` and plugins from ``plugins/``, the ``spark_default`` connection pointing at
the local Spark, and a simple-auth-manager login whose password is generated once into
``$AIRFLOW_HOME``. ``k2 airflow ...`` runs the Airflow CLI with this same environment.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import urllib.request
from pathlib import Path

from k2.secret import Secret
from k2.settings import REPO_ROOT, PlatformSettings, env_for_children
from k2ops.stack.errors import StackError
from k2ops.stack.postgres import AIRFLOW_DB
from k2ops.stack.private_files import ensure_secret, write_private
from k2ops.stack.process import Service
from k2ops.stack.progress import step

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"


def _secret(s: PlatformSettings, name: str, make, env: str | None = None) -> str:
    """A secret from ``env`` if set (deployments), else generated once into $K2_HOME."""
    if env and os.environ.get(env):
        return os.environ[env]
    if env and os.environ.get(env + "_FILE"):  # compose secrets
        return Path(os.environ[env + "_FILE"]).read_text().strip()
    return ensure_secret(s.home_path / "secrets" / name, make)


def _token() -> str:
    return secrets.token_urlsafe(32)


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def password(s: PlatformSettings) -> Secret:
    """The UI password of ``K2_AIRFLOW_USER`` (generated once)."""
    return Secret(json.loads((s.airflow_home / PASSWORDS_FILE).read_text())[s.airflow_user])


def api_url(s: PlatformSettings) -> str:
    return s.airflow_api_url.rstrip("/")


def spark_connection(s: PlatformSettings) -> str:
    return json.dumps({"conn_type": "spark", "host": s.spark_master})


def environment(s: PlatformSettings) -> dict[str, str]:
    """The environment every Airflow process and CLI call of K2 runs with."""
    env = env_for_children(s)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update(
        {
            "AIRFLOW_HOME": str(s.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "8",  # LocalExecutor forks this many workers (~150 MB each)
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__FERNET_KEY": _secret(
                s, "airflow_fernet_key", _fernet_key, "AIRFLOW__CORE__FERNET_KEY"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{s.airflow_user}:admin",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url(s)}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": s.pg_sqlalchemy_url(
                AIRFLOW_DB, s.airflow_pg_user, s.airflow_pg_password
            ),
            "AIRFLOW__API__HOST": s.bind_host,
            "AIRFLOW__API__PORT": str(s.airflow_port),
            "AIRFLOW__API__BASE_URL": api_url(s),
            "AIRFLOW__API_AUTH__JWT_SECRET": _secret(
                s, "airflow_jwt_secret", _token, "AIRFLOW__API_AUTH__JWT_SECRET"
            ),
            "AIRFLOW__API__SECRET_KEY": _secret(
                s, "airflow_api_secret", _token, "AIRFLOW__API__SECRET_KEY"
            ),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
            # New DAG files show up within 30 s instead of the default 5 minutes.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            # An unchanged DAG file is parsed again only every 5 minutes (Airflow's default: 30 s,
            # a steady few % of one of two cores); a changed one is parsed at the next refresh.
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "300",
            "AIRFLOW_CONN_SPARK_DEFAULT": spark_connection(s),
        }
    )
    return env


def airflow_bin() -> str:
    return str(Path(sys.executable).parent / "airflow")


def run_cli(s: PlatformSettings, args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([airflow_bin(), *args], env=environment(s), **kwargs)


def write_login(s: PlatformSettings) -> None:
    """The simple auth manager's password file (0600): K2_AIRFLOW_PASSWORD, else generated once."""
    s.airflow_home.mkdir(parents=True, exist_ok=True)
    pw_file = s.airflow_home / PASSWORDS_FILE
    if s.airflow_password or not pw_file.exists():
        login = {s.airflow_user: s.airflow_password.reveal() or secrets.token_urlsafe(12)}
        write_private(pw_file, json.dumps(login))


def prepare(s: PlatformSettings) -> None:
    """Metadata DB migration (idempotent) and the login's password file."""
    write_login(s)
    log = s.logs_dir / "airflow-db-migrate.log"
    with step("airflow: migrating the metadata database"), open(log, "wb") as out:
        proc = run_cli(s, ["db", "migrate"], stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise StackError("airflow", "`airflow db migrate` failed", f"see {log}")


def health(s: PlatformSettings) -> dict:
    with urllib.request.urlopen(f"{api_url(s)}/api/v2/monitor/health", timeout=3) as resp:
        return json.loads(resp.read())


def _component_healthy(s: PlatformSettings, key: str) -> bool:
    return health(s).get(key, {}).get("status") == "healthy"


def services(s: PlatformSettings) -> list[Service]:
    env = environment(s)
    host = s.bind_host
    ready = {
        "api-server": lambda: health(s)["metadatabase"]["status"] == "healthy",
        "scheduler": lambda: _component_healthy(s, "scheduler"),
        "dag-processor": lambda: _component_healthy(s, "dag_processor"),
        "triggerer": lambda: _component_healthy(s, "triggerer"),
    }
    out = []
    for component in COMPONENTS:
        out.append(
            Service(
                name=f"airflow-{component}",
                argv=[airflow_bin(), component],
                run_dir=s.run_dir,
                log_file=s.logs_dir / f"airflow-{component}.log",
                address=f"{api_url(s)} (UI)" if component == "api-server" else "",
                env=env,
                cwd=s.airflow_home,
                ports=[(host, s.airflow_port)] if component == "api-server" else [],
                ready=ready[component],
                ready_timeout=180,
                stop_timeout=45,
            )
        )
    return out
