#!/usr/bin/env bash
# System packages the local stack needs, from Debian's archive: Java 17 (Kafka, the
# registry, Spark), Maven (fetches JVM artifacts), PostgreSQL (catalog, registry and
# Airflow metadata), Chromium for the UI test. Installs only what is missing; needs
# root (or sudo) to install.
set -euo pipefail

missing=()
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || missing+=(postgresql)
command -v runuser >/dev/null || missing+=(util-linux)
# Headless browser for the Airflow UI test (tests/integration/airflow/test_bootstrap_dag.py).
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "[k2] system: installing ${missing[*]} from Debian's packages"
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
  echo "[k2] system: need root to install ${missing[*]}; install them and re-run" >&2; exit 1
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
