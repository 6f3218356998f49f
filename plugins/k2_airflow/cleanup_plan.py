"""The cleanup plan: what a dry run of cleanup_migrations found, and the only thing a real
run may remove.

The dry run saves the plan as JSON at :func:`plan_path` (``$K2_HOME/cleanup/plan.json``;
in docker-compose ``K2_HOME`` is the ``k2-state`` volume every Airflow container mounts).
The real run loads it and refuses, with a :class:`PlanError` saying what to do, when:

- there is no plan (run the dry run first);
- the plan was made against another deployment: another Iceberg catalog, registry or
  Kafka cluster (:func:`target_of`);
- the plan is older than :data:`MAX_AGE`: what was reviewed no longer describes the estate;
- the plan names something that is not on the explicit legacy list (:mod:`k2_airflow.legacy`),
  e.g. after a hand edit.

After a successful real run the plan is archived next to itself (:func:`archive`), so a
second real run refuses until a new dry run has been reviewed.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from k2.errors import K2Error
from k2.settings import PlatformSettings
from k2_airflow import legacy

FORMAT = 1
MAX_AGE = timedelta(hours=24)  # long enough to review a dry run, short enough to still be true
CLOCK_SKEW = timedelta(minutes=5)  # Airflow containers' clocks may differ a little


class PlanError(K2Error, RuntimeError):
    """The real run cannot use the plan; the message says why and what to do."""


def plan_path(settings: PlatformSettings) -> Path:
    return settings.home_path / "cleanup" / "plan.json"


def target_of(settings: PlatformSettings) -> dict[str, str]:
    """Which deployment a plan is about: the catalog, the registry and the Kafka cluster."""
    return {
        "catalog": (f"{settings.catalog_name} (postgresql://{settings.pg_host}:{settings.pg_port}/"
                    f"{settings.catalog_db}, warehouse {settings.warehouse})"),
        "registry": settings.registry_url,
        "kafka": settings.kafka_bootstrap,
    }


def save(settings: PlatformSettings, items: dict[str, list[str]], now: datetime | None = None) -> Path:
    """Write the plan (kind -> names) atomically; replaces any earlier plan."""
    for kind in items:
        _check_on_list(kind, items[kind])
    plan = {
        "format": FORMAT,
        "created_at": (now or datetime.now(UTC)).isoformat(),
        "target": target_of(settings),
        "items": {kind: sorted(items.get(kind, [])) for kind in legacy.KINDS},
    }
    path = plan_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(plan, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def load(settings: PlatformSettings, now: datetime | None = None) -> dict:
    """The saved plan, checked against this deployment, its age and the legacy list."""
    path = plan_path(settings)
    rerun = "Trigger cleanup_migrations with dry_run=true, review its list, then run it for real."
    if not path.exists():
        raise PlanError(f"no cleanup plan at {path}: the real run only removes what a dry run "
                        f"listed. {rerun}")
    try:
        plan = json.loads(path.read_text())
        created = datetime.fromisoformat(plan["created_at"])
        target, items = plan["target"], plan["items"]
    except (ValueError, KeyError, TypeError) as exc:
        raise PlanError(f"cleanup plan {path} is unreadable ({exc}). {rerun}") from exc
    if plan.get("format") != FORMAT:
        raise PlanError(f"cleanup plan {path} has format {plan.get('format')!r}, expected {FORMAT}. {rerun}")
    here = target_of(settings)
    differ = [f"{k}: plan {target.get(k)!r}, this run {v!r}" for k, v in here.items() if target.get(k) != v]
    if differ:
        raise PlanError(f"cleanup plan {path} was made for another deployment ({'; '.join(differ)}). {rerun}")
    age = (now or datetime.now(UTC)) - created
    if age > MAX_AGE:
        raise PlanError(f"cleanup plan {path} is {_hours(age)} old, more than the {_hours(MAX_AGE)} "
                        f"a plan stays valid (made {plan['created_at']}). {rerun}")
    if age < -CLOCK_SKEW:
        raise PlanError(f"cleanup plan {path} is dated in the future ({plan['created_at']}). {rerun}")
    if set(items) != set(legacy.KINDS):
        raise PlanError(f"cleanup plan {path} lists kinds {sorted(items)}, expected {list(legacy.KINDS)}. {rerun}")
    for kind, names in items.items():
        _check_on_list(kind, names)
    return plan


def archive(settings: PlatformSettings) -> Path:
    """Move the carried-out plan aside (``plan-<created>.done.json``), keeping it as a record."""
    path = plan_path(settings)
    created = datetime.fromisoformat(json.loads(path.read_text())["created_at"])
    done = path.with_name(f"plan-{created.astimezone(UTC):%Y%m%dT%H%M%S%fZ}.done.json")
    os.replace(path, done)
    return done


def _check_on_list(kind: str, names: list[str]) -> None:
    off = sorted(n for n in names if not legacy.is_legacy(kind, n))
    if off:
        raise PlanError(f"cleanup plan lists {kind}s that are not on the explicit legacy list "
                        f"(k2_airflow.legacy), so never removed: {off}")


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f} h"
