"""A real browser (headless Chromium): log in, see every DAG, trigger bootstrap, see it succeed.

Needs `apt-get install -y chromium chromium-driver` and `selenium` in the venv; the
screenshots are kept as README illustrations under docs/screenshots/.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from k2.stack.airflow import api_url, password
from polling import wait_until
from stack_api import AirflowApi

pytestmark = [pytest.mark.dags, pytest.mark.integration]

SHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"
SUITE = ["benchmark", "bootstrap", "cleanup_migrations", "compaction", "retention",
         "stream_bronze_ingestion", "stream_gold_aggregation", "stream_silver_transformation",
         "streaming_babysitter"]


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


def _shot(b, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    b.save_screenshot(str(SHOTS / f"{name}.png"))


def test_login_see_dags_trigger_bootstrap_and_see_it_succeed(browser, stack, airflow_cli):
    from selenium.webdriver.common.by import By

    airflow_cli("dags", "reserialize", timeout=120)
    api = AirflowApi(stack)
    base = api_url(stack)

    browser.get(base + "/")
    browser.find_element(By.NAME, "username").send_keys(stack.airflow_user)
    browser.find_element(By.NAME, "password").send_keys(password(stack))
    _shot(browser, "airflow-login")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_until(lambda: "/auth/login" not in browser.current_url, 30, 0.5, "login")

    browser.get(base + "/dags")
    wait_until(lambda: all(d in _body(browser) for d in SUITE), 60, 1, "every DAG listed")
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

        run = wait_until(finished, 420, 3, "the triggered bootstrap run to finish")
        assert run["state"] == "success", run
        browser.get(f"{base}/dags/bootstrap/runs/{run['dag_run_id']}")
        wait_until(lambda: "success" in _body(browser).lower(), 60, 1, "the run page showing success")
        time.sleep(1)  # let the grid finish painting before the screenshot
        _shot(browser, "airflow-bootstrap-success")
    finally:
        api.set_paused("bootstrap", True)  # leave it as found: manual DAGs stay paused
