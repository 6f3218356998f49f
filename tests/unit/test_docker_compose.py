"""docker-compose.yaml, validated by compose-go (Docker Compose's own parser) plus K2 rules.

No Docker engine runs here, so the file is checked by tools/compose-check (Go), which
loads it exactly as `docker compose config` would and then enforces health checks,
restart policies and loopback-only published ports.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from k2.exchanges import names

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose_check(tmp_path_factory) -> Path:
    go = shutil.which("go")
    assert go, "Go toolchain not found: it is needed to validate docker-compose.yaml"
    binary = tmp_path_factory.mktemp("bin") / "compose-check"
    build = subprocess.run([go, "build", "-o", str(binary), "."], cwd=REPO / "tools" / "compose-check",
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr
    return binary


def _check(binary: Path, compose: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), str(compose), str(REPO / "docker" / ".env.example")],
                          capture_output=True, text=True, timeout=60)


def test_compose_file_is_valid(compose_check):
    result = _check(compose_check, REPO / "docker-compose.yaml")
    assert result.returncode == 0, result.stderr
    assert f"{16 + len(names())} services" in result.stdout  # the platform's 16, a worker per venue


def _mutated(tmp_path: Path, mutate) -> Path:
    doc = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
    mutate(doc)
    path = tmp_path / "docker-compose.yaml"
    # Relative bind mounts and build contexts resolve against the file's folder.
    (tmp_path / "docker").mkdir()
    for name in ("postgres-init.sql", "kafka-start.sh", "minio-init.sh"):
        shutil.copy(REPO / "docker" / name, tmp_path / "docker")
    for folder in ("prometheus", "grafana"):
        shutil.copytree(REPO / "docker" / folder, tmp_path / "docker" / folder)
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["services"]["worker-kraken"].pop("healthcheck"), "worker-kraken: no healthcheck"),
        (lambda d: d["services"].pop("spark-worker-2"), 'missing service "spark-worker-2"'),
        (lambda d: d["services"]["minio"].update(ports=["9001:9001"]), "not 127.0.0.1"),
        (lambda d: d["services"]["kafka"].update(healthchek={}), "invalid compose file"),
    ],
)
def test_violations_are_reported(compose_check, tmp_path, mutate, message):
    result = _check(compose_check, _mutated(tmp_path, mutate))
    assert result.returncode == 1
    assert message in result.stderr


@pytest.mark.parametrize("exchange", names())
def test_a_worker_with_a_bad_setting_is_not_restarted_forever(exchange):
    """Exit 78 (a setting no restart can fix) must not loop: the supervisor inside the
    container leaves that worker down, and Docker restarts the supervisor only a few times."""
    service = yaml.safe_load((REPO / "docker-compose.yaml").read_text())["services"][f"worker-{exchange}"]
    assert service["command"] == ["k2", "workers", "--exchange", exchange]
    policy, _, tries = service["restart"].partition(":")
    assert policy == "on-failure" and 1 <= int(tries) <= 5


# Least privilege: what each service is given ---------------------------------------------

def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def _services() -> dict[str, dict]:
    return _compose()["services"]


def _k2_services() -> dict[str, dict]:
    """The services that run the K2 image (everything but the third-party images)."""
    return {name: svc for name, svc in _services().items() if svc.get("image") == "k2-platform:local"}


AIRFLOW_SECRETS = {"kafka_streams_password", "kafka_admin_password", "pg_catalog_password",
                   "pg_airflow_password", "s3_access_key_id", "s3_secret_access_key", "airflow_password",
                   "airflow_fernet_key", "airflow_jwt_secret", "airflow_api_secret", "spark_auth_secret"}
# Every service's secrets, exactly: a new secret anywhere must be added here on purpose.
SECRETS = {
    "postgres": {"pg_superuser_password", "pg_catalog_password", "pg_registry_password", "pg_airflow_password"},
    "kafka": {"kafka_broker_password", "kafka_admin_password", "kafka_producer_password",
              "kafka_streams_password"},
    "kafka-init": {"kafka_broker_password"},
    "registry": set(),  # its own database password, as a variable (see test below)
    "minio": {"minio_root_user", "minio_root_password"},
    "minio-init": {"minio_root_user", "minio_root_password", "s3_access_key_id", "s3_secret_access_key"},
    "spark-master": {"spark_auth_secret"}, "spark-worker-1": {"spark_auth_secret"},
    "spark-worker-2": {"spark_auth_secret"},
    **{f"airflow-{role}": AIRFLOW_SECRETS for role in ("init", "api-server", "scheduler", "dag-processor",
                                                        "triggerer")},
    **{f"worker-{exchange}": {"kafka_producer_password"} for exchange in names()},
    "prometheus": set(),
    "grafana": {"grafana_admin_password"},
}
SECRET_VARIABLE = re.compile(r"PASSWORD|SECRET|FERNET|JWT|ACCESS_KEY", re.IGNORECASE)


def test_each_service_gets_only_its_own_secrets():
    assert {name: set(svc.get("secrets", [])) for name, svc in _services().items()} == SECRETS
    assert set(_compose()["secrets"]) == set().union(*SECRETS.values())


@pytest.mark.parametrize("exchange", names())
def test_workers_receive_no_database_s3_or_airflow_secret(exchange):
    """The workers face the internet: Kafka's producer password is their only secret, and
    they do not mount k2-state (Spark's generated configuration holds the catalog and S3
    credentials)."""
    service = _services()[f"worker-{exchange}"]
    env = service["environment"]
    assert [k for k in env if SECRET_VARIABLE.search(k)] == ["K2_KAFKA_SASL_PASSWORD_FILE"]
    assert env["K2_KAFKA_SASL_PASSWORD_FILE"] == "/run/secrets/kafka_producer_password"
    assert not any(k.startswith(("K2_PG_USER", "K2_S3_ACCESS", "AIRFLOW__", "K2_KAFKA_ADMIN")) for k in env)
    assert not any(v.startswith("k2-state:") for v in service["volumes"])


def test_secrets_travel_as_files_except_the_registrys_own_database_password():
    """No interpolated ${...} value in any environment, but the registry's password
    (Apicurio reads no *_FILE variable)."""
    inline = {(name, key) for name, svc in _services().items()
              for key, value in (svc.get("environment") or {}).items() if "${" in str(value)}
    assert inline == {("registry", "APICURIO_DATASOURCE_PASSWORD")}


def test_every_database_user_is_its_own_non_superuser_role():
    sql = (REPO / "docker" / "postgres-init.sql").read_text()
    for role, database in (("k2_catalog", "iceberg_catalog"), ("k2_registry", "registry"),
                           ("k2_airflow", "airflow")):
        assert re.search(rf"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE", sql)
        assert f"CREATE DATABASE {database} OWNER {role};" in sql
    services = _services()
    assert "POSTGRES_USER" not in services["postgres"]["environment"]  # the superuser is `postgres`
    assert services["registry"]["environment"]["APICURIO_DATASOURCE_USERNAME"] == "k2_registry"
    airflow = services["airflow-scheduler"]["environment"]
    assert (airflow["K2_PG_USER"], airflow["K2_AIRFLOW_PG_USER"]) == ("k2_catalog", "k2_airflow")


def test_minio_root_account_is_used_only_by_the_init_job():
    users = {name for name, svc in _services().items() if "minio_root_password" in svc.get("secrets", [])}
    assert users == {"minio", "minio-init"}
    script = (REPO / "docker" / "minio-init.sh").read_text()
    assert '"Resource": ["arn:aws:s3:::warehouse"]' in script
    assert '"Resource": ["arn:aws:s3:::warehouse/*"]' in script
    assert "mc admin policy attach root k2-warehouse --user" in script


def test_every_service_has_json_file_logging_limits():
    for name, service in _services().items():
        logging = service.get("logging") or {}
        assert logging.get("driver") == "json-file", name
        assert logging["options"].get("max-size") and logging["options"].get("max-file"), name


def test_the_image_runs_as_a_non_root_user():
    users = [line.split(None, 1)[1].strip() for line in (REPO / "docker" / "Dockerfile").read_text().splitlines()
             if line.startswith("USER ")]
    assert users, "docker/Dockerfile has no USER"
    assert users[-1].split(":")[0] not in ("root", "0")


MONITORING = ("prometheus", "grafana")


@pytest.mark.parametrize("name", MONITORING)
def test_monitoring_runs_a_pinned_image_as_its_own_non_root_user_without_capabilities(name):
    service = _services()[name]
    image, _, tag = service["image"].rpartition(":")
    assert image in ("prom/prometheus", "grafana/grafana") and tag not in ("", "latest"), service["image"]
    assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: pin a release, not {tag!r}"
    assert "user" not in service, "the images run as nobody (Prometheus) and grafana (472): keep it"
    assert service["cap_drop"] == ["ALL"] and service["security_opt"] == ["no-new-privileges:true"]
    assert "privileged" not in service and "network_mode" not in service
    assert all(v.endswith(":ro") for v in service["volumes"] if v.startswith("./")), "configuration is read-only"


def test_grafanas_only_secret_is_its_admin_password_as_a_file():
    env = _services()["grafana"]["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env
    assert (env["GF_USERS_ALLOW_SIGN_UP"], env["GF_AUTH_ANONYMOUS_ENABLED"]) == ("false", "false")
    assert _compose()["secrets"]["grafana_admin_password"] == {"environment": "K2_GRAFANA_ADMIN_PASSWORD"}
    assert "K2_GRAFANA_ADMIN_PASSWORD=" in (REPO / "docker" / ".env.example").read_text()


def test_ports_are_published_on_loopback_only_and_the_registry_not_at_all():
    for name, service in _services().items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"
    assert "ports" not in _services()["registry"]


# Kafka: SASL/SCRAM and one principal per role ----------------------------------------------

def _listeners(value: str) -> dict[str, str]:
    return dict(item.split("://", 1) for item in value.split(","))


def test_kafka_accepts_clients_only_over_sasl_scram_with_acls():
    env = _services()["kafka"]["environment"]
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    listeners = _listeners(env["KAFKA_LISTENERS"])
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    for name, address in listeners.items():
        if name == controller:
            assert address.startswith("127.0.0.1:"), "the controller listener is the broker's own"
        else:
            assert protocols[name].startswith("SASL_"), f"listener {name} is {protocols[name]}"
    assert all(protocols[name].startswith("SASL_") for name in _listeners(env["KAFKA_ADVERTISED_LISTENERS"]))
    assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_every_k2_kafka_client_service_has_sasl_settings_and_its_own_principal():
    from k2ops.stack.kafka_acls import PRINCIPALS

    scram_users = {f"k2-{role}" for role in _services()["kafka"]["environment"]["K2_KAFKA_SCRAM_ROLES"].split()}
    expected = {"kafka-init": ("k2-broker", None),
                **{f"worker-{exchange}": ("k2-producer", None) for exchange in names()},
                **{f"airflow-{r}": ("k2-streams", "k2-admin")
                   for r in ("init", "api-server", "scheduler", "dag-processor", "triggerer")}}
    assert {PRINCIPALS["producer"], PRINCIPALS["streams"], PRINCIPALS["admin"], "k2-broker"} == scram_users
    for name, (user, admin) in expected.items():
        env = _services()[name]["environment"]
        assert env["K2_KAFKA_SECURITY_PROTOCOL"].startswith("SASL_"), name
        assert env["K2_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512", name
        assert env["K2_KAFKA_SASL_USERNAME"] == user, name
        assert env["K2_KAFKA_SASL_PASSWORD_FILE"] == f"/run/secrets/kafka_{user[3:]}_password", name
        assert env.get("K2_KAFKA_ADMIN_SASL_USERNAME") == admin, name


def _k2_environ(env: dict, secrets_dir: Path) -> dict[str, str]:
    """A service's environment as its process sees it, with its secret files under secrets_dir."""
    environ = {}
    for key, value in env.items():
        value = str(value)
        if value.startswith("/run/secrets/"):
            path = secrets_dir / value.removeprefix("/run/secrets/")
            path.write_text(f"secret-of-{path.name}\n")
            value = str(path)
        environ[key] = value
    return environ


@pytest.mark.parametrize("name", sorted(_k2_services()))
def test_each_k2_service_environment_loads_as_valid_settings(name, tmp_path):
    """Every K2 variable a service is given is declared and valid, and its secrets load from files."""
    from k2.config import import_settings_modules, load, unknown_variables
    from k2.kafka_client import client_config
    from k2.settings import PlatformSettings

    import_settings_modules()
    environ = _k2_environ(_services()[name]["environment"], tmp_path)
    assert unknown_variables(environ) == []
    settings = load(PlatformSettings, environ)
    if "K2_KAFKA_SASL_USERNAME" in environ:
        config = client_config(settings)
        assert config["sasl.password"] == f"secret-of-{Path(environ['K2_KAFKA_SASL_PASSWORD_FILE']).name}"
    if name.startswith("airflow-"):
        assert settings.pg_password.reveal() == "secret-of-pg_catalog_password"
        assert settings.airflow_pg_password.reveal() == "secret-of-pg_airflow_password"
        assert settings.s3_secret_access_key.reveal() == "secret-of-s3_secret_access_key"
