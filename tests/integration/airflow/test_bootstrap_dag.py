"""The bootstrap DAG against the real local stack: creates everything, then is a no-op.

The first run is `airflow dags test` (in-process, its log in hand); the second is what an
operator does: log in to the Airflow UI in a real browser (headless Chromium), see every
DAG, trigger bootstrap, see it succeed. That run goes through the stack's scheduler and
must leave every topic, subject and table definition as the first run made it. (The
babysitter's streams may write to the tables meanwhile: `make test` runs that module
beside this one, after the first run, see platform_bootstrap.py.)

The browser needs `apt-get install -y chromium chromium-driver` (`make setup` does it)
and `selenium` in the venv; its screenshots are kept as README illustrations under
docs/screenshots/.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from k2 import contracts, iceberg_admin, kafka_admin, schema_registry
from k2.catalog import catalog
from k2.polling import wait_until
from k2ops.stack.airflow import api_url, password
from platform_bootstrap import bootstrap_lock
from stack_api import AirflowApi

pytestmark = [pytest.mark.dags, pytest.mark.integration]

SHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"
SUITE = ["benchmark", "bootstrap", "cleanup_migrations", "compaction", "completeness_ledger", "retention",
         "stream_bronze_ingestion", "stream_gold_aggregation", "stream_silver_transformation",
         "streaming_babysitter"]


def _estate(settings) -> dict:
    """Everything bootstrap owns, in a form that changes if anything is (re)created."""
    admin = kafka_admin.admin_client(settings.kafka_bootstrap)
    present = kafka_admin.existing_topics(admin)
    registry = schema_registry.registry_client(settings.registry_url)
    subjects = set(schema_registry.list_subjects(registry))
    return {
        "topics": {t.name: present.get(t.name) for t in kafka_admin.desired_topics()},
        "subjects": {
            s: (registry.get_versions(s), schema_registry.subject_compatibility(registry, s))
            for s in schema_registry.desired_subjects() if s in subjects
        },
        "tables": iceberg_admin.definitions(catalog(settings), contracts.lakehouse_tables()),
    }


@pytest.fixture(scope="module")
def first_run(airflow_cli, stack) -> tuple[str, dict]:
    """Bootstrap's first run: its output and the estate it left."""
    with bootstrap_lock(stack):
        result = airflow_cli("dags", "test", "bootstrap", timeout=420)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "DagRun Finished: dag_id=bootstrap" in output and "state=success" in output, output[-5000:]
    return output, _estate(stack)


def test_bootstrap_creates_everything(first_run):
    output, estate = first_run
    assert estate["topics"] == {
        **{contracts.trade_topic(e.name): e.default_partitions for e in contracts.EXCHANGES},
        contracts.DLQ_TOPIC: kafka_admin.DLQ_PARTITIONS,
    }
    assert set(estate["subjects"]) == {contracts.value_subject(t) for t in contracts.trade_topics()}
    for versions, level in estate["subjects"].values():
        assert level == "BACKWARD"
        assert len(versions) >= 1
    assert all(estate["tables"].values()), estate["tables"]
    assert set(estate["tables"]) == set(contracts.lakehouse_tables())
    assert "Bootstrap verification" in output and "MISSING" not in output


def test_k2_up_finds_nothing_missing_after_bootstrap(first_run, stack):
    # `k2 up` runs bootstrap again only when an object of the current contracts is missing.
    from k2ops.platform import missing_objects

    assert missing_objects(stack) == []


def test_k2_up_finds_a_table_whose_properties_bootstrap_would_change(first_run, stack):
    # A release that changes a table's write layout: `k2 up` runs bootstrap again to
    # re-apply it. The DLQ: the streams rarely commit to it while this runs.
    from k2ops.platform import missing_objects

    table = catalog(stack).load_table(contracts.qualified(contracts.SILVER_DLQ_TABLE))
    with table.transaction() as tx:
        tx.set_properties({"write.distribution-mode": "hash"})
    try:
        assert missing_objects(stack) == [f"table {contracts.qualified(contracts.SILVER_DLQ_TABLE)}: property "
                                          "write.distribution-mode is hash, expected none"]
    finally:
        with table.transaction() as tx:
            tx.set_properties({"write.distribution-mode": "none"})
    assert missing_objects(stack) == []


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium")
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("needs `apt-get install -y chromium chromium-driver`")
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,900"):
        options.add_argument(arg)
    options.binary_location = chromium
    b = webdriver.Chrome(options=options, service=webdriver.ChromeService(driver))
    b.implicitly_wait(10)
    yield b
    b.quit()


def _body(b) -> str:
    from selenium.webdriver.common.by import By

    return b.find_element(By.TAG_NAME, "body").text


def _unchanged(read: Callable[[], str]) -> Callable[[], bool]:
    """A probe that holds once ``read()`` gives the same text twice in a row: the page has
    stopped rendering (for a screenshot of the finished page)."""
    last: list[str] = []

    def probe() -> bool:
        text = read()
        settled = bool(last) and last[-1] == text
        last.append(text)
        return settled

    return probe


def _shot(b, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    b.save_screenshot(str(SHOTS / f"{name}.png"))


def test_second_run_from_the_ui_succeeds_and_changes_nothing(first_run, browser, stack, airflow_cli):
    from selenium.webdriver.common.by import By

    airflow_cli("dags", "reserialize", timeout=300)
    api = AirflowApi(stack)
    base = api_url(stack)

    browser.get(base + "/")
    browser.find_element(By.NAME, "username").send_keys(stack.airflow_user)
    browser.find_element(By.NAME, "password").send_keys(password(stack).reveal())
    _shot(browser, "airflow-login")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_until(lambda: "/auth/login" not in browser.current_url, 30, "login", interval=0.5)

    browser.get(base + "/dags")
    wait_until(lambda: all(d in _body(browser) for d in SUITE), 60, "every DAG listed", interval=1)
    _shot(browser, "airflow-dags")

    before = {r["dag_run_id"] for r in api.runs("bootstrap", ("queued", "running", "success", "failed"))}
    browser.get(base + "/dags/bootstrap")
    browser.find_element(By.CSS_SELECTOR, "[data-testid=trigger-dag-button]").click()
    submit = browser.find_element(By.CSS_SELECTOR, "[data-testid=trigger-dag-submit]")
    _shot(browser, "airflow-bootstrap-trigger")
    submit.click()  # the dialog's "Unpause bootstrap on trigger" is ticked by default

    try:
        def finished():
            runs = [r for r in api.runs("bootstrap", ("queued", "running", "success", "failed"))
                    if r["dag_run_id"] not in before]
            return runs and runs[0]["state"] in ("success", "failed") and runs[0]

        run = wait_until(finished, 420, "the triggered bootstrap run to finish", interval=3)
        assert run["state"] == "success", run
        browser.get(f"{base}/dags/bootstrap/runs/{run['dag_run_id']}")
        wait_until(lambda: "success" in _body(browser).lower(), 60, "the run page showing success", interval=1)
        wait_until(_unchanged(lambda: _body(browser)), 30, "the run page to finish painting", interval=0.5)
        _shot(browser, "airflow-bootstrap-success")
    finally:
        api.set_paused("bootstrap", True)  # leave it as found: manual DAGs stay paused

    # Nothing recreated, re-defined, re-partitioned or re-registered.
    assert _estate(stack) == first_run[1]
