"""Kafka ACLs of the docker-compose deployment: one principal per role, least privilege.

The compose broker authenticates every client with SASL/SCRAM and authorizes it with
KRaft's StandardAuthorizer (nothing is allowed without an ACL). Its SCRAM users are
created when its storage is formatted (docker/kafka-start.sh); the one-shot
``kafka-init`` service then runs ``k2 stack kafka-acls`` as the broker's super user to
grant these rights:

- producer (the exchange workers): write and describe the trade topics and the DLQ;
- streams (Spark's Kafka source, end offsets, the DLQ ledger): read and describe them,
  and use any consumer group;
- admin (bootstrap and cleanup DAGs): create, delete and configure the trade topics,
  and delete the legacy topics the cleanup migrations remove.

The local stack has no authentication and no ACLs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from k2 import contracts
from k2.kafka_admin import TIMEOUT_S

if TYPE_CHECKING:
    from confluent_kafka.admin import AclBinding, AdminClient

# Principal names; their passwords are compose secrets kafka_<role>_password.
PRINCIPALS = {"producer": "k2-producer", "streams": "k2-streams", "admin": "k2-admin"}
LEGACY_TOPIC_PREFIX = "market.equities."  # plugins/k2_airflow/legacy.py: what cleanup deletes

# role -> [(resource type, pattern type, resource name, operations)]
RIGHTS = {
    "producer": [("TOPIC", "PREFIXED", contracts.TOPIC_PREFIX, ("WRITE", "DESCRIBE"))],
    "streams": [
        ("TOPIC", "PREFIXED", contracts.TOPIC_PREFIX, ("READ", "DESCRIBE")),
        ("GROUP", "LITERAL", "*", ("READ", "DESCRIBE")),
    ],
    "admin": [
        ("TOPIC", "PREFIXED", contracts.TOPIC_PREFIX,
         ("CREATE", "DELETE", "DESCRIBE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS")),
        ("TOPIC", "PREFIXED", LEGACY_TOPIC_PREFIX, ("DELETE", "DESCRIBE")),
    ],
}


def bindings() -> list[AclBinding]:
    """Every ALLOW binding of :data:`RIGHTS`."""
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    return [
        AclBinding(ResourceType[rtype], name, ResourcePatternType[pattern], f"User:{PRINCIPALS[role]}", "*",
                   AclOperation[op], AclPermissionType.ALLOW)
        for role, rights in RIGHTS.items()
        for rtype, pattern, name, ops in rights
        for op in ops
    ]


def apply(admin: AdminClient) -> int:
    """Create the bindings (idempotent: an existing one is left as it is); returns their count."""
    wanted = bindings()
    for binding, future in admin.create_acls(wanted, request_timeout=TIMEOUT_S).items():
        try:
            future.result()
        except Exception as exc:
            raise RuntimeError(f"creating Kafka ACL {binding} failed: {exc}") from exc
    return len(wanted)
