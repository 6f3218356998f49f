#!/usr/bin/env bash
# The compose kafka service's entry point (apache/kafka image): SASL/SCRAM users are
# created when the storage is formatted, so no client ever reaches the broker without
# credentials.
#   1. server.properties from the KAFKA_* environment, named as the image names them
#      (KAFKA_FOO_BAR -> foo.bar; __ -> _; ___ -> -), plus the broker's own SCRAM login
#      on the SASL_PLAINTEXT listener, read from its secret file;
#   2. format the storage once (`--ignore-formatted` on later starts) with a SCRAM-SHA-512
#      user k2-<role> per role in K2_KAFKA_SCRAM_ROLES, password from kafka_<role>_password;
#   3. a client config for the health check (the broker's super user), then the broker.
# Users are only added at the first format; add one later with kafka-configs --alter.
# tests/integration/stack/test_compose_kafka_sasl.py runs this very script against local jars.
set -euo pipefail
secrets=${K2_SECRETS_DIR:-/run/secrets}
bin=${K2_KAFKA_BIN:-/opt/kafka/bin}
conf=${K2_KAFKA_CONFIG_DIR:-/opt/kafka/config}
umask 077

jaas() {  # jaas USER SECRET_FILE: a ScramLoginModule line
  printf 'org.apache.kafka.common.security.scram.ScramLoginModule required username="%s" password="%s";' \
    "$1" "$(cat "$secrets/$2")"
}

{
  for name in $(compgen -e | grep '^KAFKA_' | sort); do
    case $name in
      KAFKA_HEAP_OPTS|KAFKA_OPTS|KAFKA_JVM_PERFORMANCE_OPTS|KAFKA_GC_LOG_OPTS|KAFKA_JMX_OPTS|KAFKA_LOG4J_OPTS|KAFKA_HOME|KAFKA_VERSION) continue ;;
    esac
    key=$(printf '%s' "${name#KAFKA_}" | sed -e 's/\([^_]\)_\([^_]\)/\1.\2/g' -e 's/___/-/g' -e 's/__/_/g' | tr '[:upper:]' '[:lower:]')
    printf '%s=%s\n' "$key" "${!name}"
  done
  printf 'listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=%s\n' "$(jaas k2-broker kafka_broker_password)"
} >"$conf/k2-server.properties"

scram=()
for role in ${K2_KAFKA_SCRAM_ROLES:?list the SCRAM roles, e.g. broker admin producer streams}; do
  scram+=(--add-scram "SCRAM-SHA-512=[name=k2-$role,password=$(cat "$secrets/kafka_${role}_password")]")
done
"$bin/kafka-storage.sh" format --ignore-formatted -t "${CLUSTER_ID:?set CLUSTER_ID}" \
  -c "$conf/k2-server.properties" "${scram[@]}"

printf 'security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\nsasl.jaas.config=%s\n' \
  "$(jaas k2-broker kafka_broker_password)" >"$conf/k2-client.properties"

exec "$bin/kafka-server-start.sh" "$conf/k2-server.properties"
