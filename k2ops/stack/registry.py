"""Apicurio Registry: a Confluent-compatible schema registry, stored in PostgreSQL.

Clients use its Confluent API at ``/apis/ccompat/v7`` (``K2_REGISTRY_URL``). Storage is
the ``registry`` database, so schema ids inside messages already in Kafka stay valid
across restarts.
"""

from __future__ import annotations

import os
import urllib.request

from k2.settings import PlatformSettings
from k2ops.stack.artifacts import registry_jar
from k2ops.stack.kafka import java
from k2ops.stack.postgres import REGISTRY_DB
from k2ops.stack.process import Service


def _ready(s: PlatformSettings) -> bool:
    with urllib.request.urlopen(f"{s.registry_url}/subjects", timeout=3) as resp:
        return resp.status == 200


def service(s: PlatformSettings) -> Service:
    jar = registry_jar(s)
    env = dict(os.environ)
    env.update(
        {
            "QUARKUS_HTTP_HOST": s.bind_host,
            "QUARKUS_HTTP_PORT": str(s.registry_port),
            "QUARKUS_PROFILE": "prod",
            "APICURIO_STORAGE_KIND": "sql",
            "APICURIO_STORAGE_SQL_KIND": "postgresql",
            "APICURIO_DATASOURCE_URL": s.pg_jdbc_url(REGISTRY_DB),
            "APICURIO_DATASOURCE_USERNAME": s.pg_user,
            "APICURIO_DATASOURCE_PASSWORD": s.pg_password.reveal(),
            # Apicurio opens 20 database connections at start by default (and keeps them):
            # on 2 busy cores those 20 logins could outlast its 5 s wait for a connection,
            # and it exited at start. One client needs a few; a connection may take 30 s.
            "APICURIO_DATASOURCE_JDBC_INITIAL_SIZE": "2",
            "APICURIO_DATASOURCE_JDBC_MIN_SIZE": "2",
            "APICURIO_DATASOURCE_JDBC_MAX_SIZE": "10",
            "QUARKUS_DATASOURCE_POSTGRESQL_JDBC_ACQUISITION_TIMEOUT": "30S",
            # The cleanup migrations delete legacy subjects; Apicurio disables deletes
            # by default.
            "APICURIO_REST_DELETION_ARTIFACT_ENABLED": "true",
            "APICURIO_REST_DELETION_ARTIFACT_VERSION_ENABLED": "true",
            "APICURIO_REST_DELETION_GROUP_ENABLED": "true",
        }
    )
    return Service(
        name="registry",
        argv=[java(), "-Xmx384m", "-XX:+UseSerialGC", "-jar", str(jar)],
        run_dir=s.run_dir,
        log_file=s.logs_dir / "registry.log",
        address=s.registry_url,
        env=env,
        cwd=jar.parent,
        ports=[(s.bind_host, s.registry_port)],
        ready=lambda: _ready(s),
        ready_timeout=120,
    )
