"""One isolated pipeline per test module: namespace, topics, checkpoints of its own."""

from __future__ import annotations

import shutil
import uuid
from urllib.parse import urlparse

import pytest

from k2.catalog import catalog
from k2.kafka_admin import admin_client
from k2.settings import platform

from .jobs import Jobs


def _drop_namespace(namespace: str) -> None:
    cat = catalog(platform())
    try:
        tables = cat.list_tables(namespace)
    except Exception:  # noqa: BLE001 - nothing to clean
        return
    for ident in tables:
        table = cat.load_table(ident)
        location = urlparse(table.location()).path
        cat.drop_table(ident)
        shutil.rmtree(location, ignore_errors=True)
    cat.drop_namespace(namespace)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory) -> Jobs:
    run = uuid.uuid4().hex[:8]
    root = tmp_path_factory.mktemp(f"spark-{run}")
    (root / "logs").mkdir()
    j = Jobs(
        namespace=f"k2test_{run}",
        topics={"binance": f"k2test.{run}.binance", "kraken": f"k2test.{run}.kraken"},
        checkpoint_root=root / "checkpoints",
        log_dir=root / "logs",
    )
    yield j
    j.stop_all()
    _drop_namespace(j.namespace)
    admin = admin_client(platform().kafka_bootstrap)
    for f in admin.delete_topics(list(j.topics.values())).values():
        try:
            f.result(30)
        except Exception:  # noqa: BLE001 - topic may not exist if setup failed early
            pass
