"""The cleanup plan: a dry run saves it, a real run removes exactly it or refuses."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest

from k2.config import load
from k2.settings import PlatformSettings
from k2_airflow import cleanup, cleanup_plan
from k2_airflow.cleanup_plan import PlanError

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ITEMS = {"table": ["trades_v1"], "subject": ["com.k2.marketdata.Trade-value"],
         "topic": ["market.equities.trades.asx"]}


@pytest.fixture
def settings(tmp_path) -> PlatformSettings:
    return load(PlatformSettings, {"K2_HOME": str(tmp_path), "K2_PG_PASSWORD": "x"})


def test_save_then_load_round_trips(settings):
    path = cleanup_plan.save(settings, ITEMS, now=NOW)
    assert path == settings.home_path / "cleanup" / "plan.json"
    plan = cleanup_plan.load(settings, now=NOW + timedelta(hours=1))
    assert plan["items"] == ITEMS
    assert plan["target"] == cleanup_plan.target_of(settings)
    assert datetime.fromisoformat(plan["created_at"]) == NOW


def test_no_plan_is_refused_saying_to_dry_run_first(settings):
    with pytest.raises(PlanError, match=r"no cleanup plan .*dry_run=true"):
        cleanup_plan.load(settings)


def test_an_old_plan_is_refused(settings):
    cleanup_plan.save(settings, ITEMS, now=NOW)
    cleanup_plan.load(settings, now=NOW + cleanup_plan.MAX_AGE)  # at the limit: still valid
    with pytest.raises(PlanError, match=r"24\.1 h old, more than the 24\.0 h.*dry_run=true"):
        cleanup_plan.load(settings, now=NOW + cleanup_plan.MAX_AGE + timedelta(minutes=6))


def test_a_plan_from_the_future_is_refused(settings):
    cleanup_plan.save(settings, ITEMS, now=NOW + timedelta(hours=1))
    with pytest.raises(PlanError, match="in the future"):
        cleanup_plan.load(settings, now=NOW)


@pytest.mark.parametrize(("field", "value", "label"), [
    ("registry_url", "http://other:8081/apis/ccompat/v7", "registry"),
    ("kafka_bootstrap", "other:9092", "kafka"),
    ("catalog_db", "other_catalog", "catalog"),
    ("pg_host", "other-db", "catalog"),
    ("warehouse", "s3://other/", "catalog"),
])
def test_a_plan_for_another_deployment_is_refused(settings, field, value, label):
    cleanup_plan.save(settings, ITEMS, now=NOW)
    elsewhere = dataclasses.replace(settings, **{field: value})
    with pytest.raises(PlanError, match=rf"another deployment \({label}: plan .*this run .*{value}"):
        cleanup_plan.load(elsewhere, now=NOW)


def test_a_plan_naming_anything_off_the_list_is_refused(settings):
    path = cleanup_plan.save(settings, ITEMS, now=NOW)
    plan = json.loads(path.read_text())
    plan["items"]["subject"].append("equity-other-app-value")
    path.write_text(json.dumps(plan))
    with pytest.raises(PlanError, match=r"not on the explicit legacy list.*equity-other-app-value"):
        cleanup_plan.load(settings, now=NOW)
    with pytest.raises(PlanError, match="myapp.v1-value"):
        cleanup_plan.save(settings, {**ITEMS, "subject": ["myapp.v1-value"]}, now=NOW)


@pytest.mark.parametrize("text", ["{not json", json.dumps({"format": 1}), json.dumps([])])
def test_an_unreadable_plan_is_refused(settings, text):
    path = cleanup_plan.plan_path(settings)
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(PlanError, match="unreadable"):
        cleanup_plan.load(settings, now=NOW)


def test_archive_moves_the_plan_aside_so_the_next_real_run_refuses(settings):
    cleanup_plan.save(settings, ITEMS, now=NOW)
    done = cleanup_plan.archive(settings)
    assert done.name == "plan-20260301T120000000000Z.done.json"
    assert json.loads(done.read_text())["items"] == ITEMS
    with pytest.raises(PlanError, match="no cleanup plan"):
        cleanup_plan.load(settings)


class FakeEstate:
    """One kind's objects: what exists, and what was removed (in order)."""

    def __init__(self, *names: str):
        self.names = set(names)
        self.removed: list[str] = []

    def present(self) -> list[str]:
        return sorted(self.names)

    def remove(self, names: list[str]) -> dict[str, str]:
        self.removed += names
        self.names -= set(names)
        return {n: "deleted" for n in names}


def _step(settings, estate: FakeEstate, dry_run: bool) -> dict[str, str]:
    return cleanup._step("subject", settings, dry_run, estate.present, estate.remove)


def test_dry_run_lists_only_listed_names_and_removes_nothing(settings):
    estate = FakeEstate("com.k2.marketdata.Trade-value", "equity-other-app-value", "myapp.v1-value",
                        "market.crypto.trades.binance-value")
    assert _step(settings, estate, dry_run=True) == {"com.k2.marketdata.Trade-value": "would remove"}
    assert estate.removed == []


def test_real_run_removes_exactly_the_plan(settings, caplog):
    estate = FakeEstate("com.k2.marketdata.Trade-value", "market.equities.trades.asx-value",
                        "equity-other-app-value")
    found = _step(settings, estate, dry_run=True)
    cleanup.summarize(settings, True, {"table": {}, "subject": found, "topic": {}})
    # Between the dry run and the real run: a listed legacy subject appears, one planned goes.
    estate.names |= {"com.k2.marketdata.Quote-value"}
    estate.names -= {"market.equities.trades.asx-value"}

    with caplog.at_level("INFO", logger="k2.airflow.cleanup"):
        results = _step(settings, estate, dry_run=False)
    assert estate.removed == ["com.k2.marketdata.Trade-value"]
    assert results == {"com.k2.marketdata.Trade-value": "deleted",
                       "market.equities.trades.asx-value": cleanup.GONE}
    assert estate.names == {"com.k2.marketdata.Quote-value", "equity-other-app-value"}
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "k2.airflow.cleanup"]
    assert [(x["event"], x["name"], x["outcome"]) for x in lines] == [
        ("cleanup_removed", "com.k2.marketdata.Trade-value", "deleted"),
        ("cleanup_not_removed", "market.equities.trades.asx-value", cleanup.GONE),
    ]
    assert {x["kind"] for x in lines} == {"subject"}


def test_real_run_without_a_plan_removes_nothing(settings):
    estate = FakeEstate("com.k2.marketdata.Trade-value")
    with pytest.raises(PlanError, match="dry run"):
        _step(settings, estate, dry_run=False)
    assert estate.removed == []


def test_real_run_summary_archives_the_plan(settings):
    cleanup.summarize(settings, True, {"table": {}, "subject": {}, "topic": {}})
    report = cleanup.summarize(settings, False, {"table": {}, "subject": {}, "topic": {}})
    assert report["plan"].endswith(".done.json")
    assert not cleanup_plan.plan_path(settings).exists()
