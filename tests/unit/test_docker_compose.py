"""docker-compose.yaml, validated by compose-go (Docker Compose's own parser) plus K2 rules.

No Docker engine runs here, so the file is checked by tools/compose-check (Go), which
loads it exactly as `docker compose config` would and then enforces health checks,
restart policies and loopback-only published ports.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

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
    assert "15 services" in result.stdout


def _mutated(tmp_path: Path, mutate) -> Path:
    doc = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
    mutate(doc)
    path = tmp_path / "docker-compose.yaml"
    # Relative bind mounts and build contexts resolve against the file's folder.
    (tmp_path / "docker").mkdir()
    shutil.copy(REPO / "docker" / "postgres-init.sql", tmp_path / "docker")
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


@pytest.mark.parametrize("exchange", ["binance", "kraken"])
def test_a_worker_with_a_bad_setting_is_not_restarted_forever(exchange):
    """Exit 78 (a setting no restart can fix) must not loop: the supervisor inside the
    container leaves that worker down, and Docker restarts the supervisor only a few times."""
    service = yaml.safe_load((REPO / "docker-compose.yaml").read_text())["services"][f"worker-{exchange}"]
    assert service["command"] == ["k2", "workers", "--exchange", exchange]
    policy, _, tries = service["restart"].partition(":")
    assert policy == "on-failure" and 1 <= int(tries) <= 5
