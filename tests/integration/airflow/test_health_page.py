"""The K2 health page in headless Chromium, against the real stack and its Airflow api-server.

The test puts known figures where the page reads them: 25 rows in ``silver_dlq`` and 3
records on the workers' DLQ topic with a reason of its own, two hours of a symbol of its
own in the completeness ledger, and a worker's real metrics server (workers/metrics.py)
on the Binance worker's port when that port is free. It logs in to the Airflow UI with
the stack's generated credentials, opens "K2 health" from the navigation and checks the
page against those figures and against what the stack itself reports: `k2 streams
status --json`, the DLQ topic's watermarks, the rows of ``silver_dlq``, and Airflow's
REST API for the maintenance DAGs' runs. An anonymous request is refused. The table rows
are deleted afterwards; the topic's records stay until Kafka's retention removes them.

It reads and writes the platform's own namespace and topic, and compares stream states:
in `make test` it belongs after the babysitter's module (the `airflow` group), when no
stream runs.

Playwright drives the system's Chromium (/usr/bin/chromium, scripts/system-deps.sh); it
never downloads a browser. Screenshots go to docs/screenshots/health-page*.png (README).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from k2 import contracts, ledger_store
from k2.catalog import catalog
from k2ops.stack.airflow import api_url, password
from platform_bootstrap import ensure_estate
from stack_api import AirflowApi
from workers.settings import worker_settings

pytestmark = [pytest.mark.dags, pytest.mark.integration]

SHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MAINTENANCE_DAGS = ("retention", "compaction", "streaming_babysitter")
SILVER_ROWS, TOPIC_RECORDS = 25, 3
WAIT_MS = 30_000  # for the page to show a figure: a refresh is every 10 s


@pytest.fixture(scope="module")
def base(stack, airflow_cli) -> str:
    url = api_url(stack)
    try:
        urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=10).close()
    except OSError as exc:
        pytest.fail(f"Airflow's api-server is not answering at {url} ({exc}): `k2 stack up` starts it")
    ensure_estate(stack, airflow_cli)
    return url


@pytest.fixture(scope="module")
def reason(run_id) -> str:
    return f"health_probe_{run_id}"


@pytest.fixture(scope="module")
def seeded(stack, base, run_id, reason):
    """Known rows in silver_dlq and the ledger (removed afterwards) and records on the DLQ topic."""
    from confluent_kafka import Producer
    from pyiceberg.expressions import EqualTo

    from k2.kafka_client import client_config

    cat = catalog(stack)
    now = datetime.now(UTC).replace(tzinfo=None)  # Iceberg timestamps without zone are UTC
    dlq = cat.load_table(contracts.qualified(contracts.SILVER_DLQ_TABLE))
    dlq.append(pa.Table.from_pylist([
        {"key": b"BTCUSDT", "value": b"\x01", "topic": f"health-page-{run_id}", "partition": 0, "offset": i,
         "kafka_timestamp": now, "schema_id": None, "error_type": reason,
         "error_message": "seeded by the health page test", "error_timestamp": now}
        for i in range(SILVER_ROWS)], schema=dlq.schema().as_arrow()))

    symbol = f"HEALTH{run_id.upper()}"
    this_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    ledger_rows = [
        {"hour": this_hour - timedelta(hours=1), "status": "gaps", "gold_trades": 42, "missing_ids": 3},
        {"hour": this_hour, "status": "complete", "gold_trades": 17, "missing_ids": 0},
    ]
    ledger = cat.load_table(ledger_store.identifier())
    ledger.append(pa.Table.from_pylist([
        {**r, "exchange": "binance", "symbol": symbol, "live_trades": r["gold_trades"], "backfill_trades": 0,
         "expected_trades": r["gold_trades"] + r["missing_ids"], "missing_ranges": [], "first_trade_id": "1",
         "last_trade_id": "99", "computed_at": datetime.now(UTC)} for r in ledger_rows], schema=ledger_store.ARROW_SCHEMA))

    producer = Producer(client_config(stack))
    for i in range(TOPIC_RECORDS):
        producer.produce(contracts.DLQ_TOPIC, key=b"binance", value=json.dumps(
            {"exchange": "binance", "error_kind": reason, "error": f"seeded by the health page test ({i})", "raw": "",
             "raw_encoding": "utf-8", "raw_length": 0, "raw_sha256": None, "raw_truncated": False,
             "received_at_us": int(time.time() * 1e6), "endpoint": "test"}).encode())
    assert producer.flush(30) == 0
    yield {"symbol": symbol, "ledger": ledger_rows}
    cat.load_table(contracts.qualified(contracts.SILVER_DLQ_TABLE)).delete(EqualTo("error_type", reason))
    cat.load_table(ledger_store.identifier()).delete(EqualTo("symbol", symbol))


@pytest.fixture(scope="module")
def worker(stack):
    """A worker's real metrics server with known counters on the Binance worker's port, or
    None when that port is taken (a real worker runs: the page must then show it up)."""
    from workers.metrics import serve
    from workers.stats import WorkerStats

    port = worker_settings().metrics_port("binance")
    if _listening(stack.bind_host, port):
        yield None
        return
    stats = WorkerStats("binance", trades=1200, delivered=1195, delivery_failures=3, connected=True,
                        last_data_at=time.time())
    stats.dead_letters["bad_json"] = 2
    stats.reconnects["watchdog"] = 4
    _, stop = serve(stats, stack.bind_host, port, stale_after_s=60)
    yield stats
    stop()


@pytest.fixture
def browser_page(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (requirements.txt)")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: scripts/system-deps.sh installs chromium")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1440, "height": 1000})
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def _on_the_plugin_route(url: str) -> bool:
    path = urllib.parse.urlsplit(url).path
    return path == "/plugin/k2-health" or path.startswith("/plugin/k2-health/")


def _listening(host: str, port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((host, port)) == 0


def _streams_status() -> dict[str, dict]:
    """What `k2 streams status --json` reports, per stream (the operator's view)."""
    result = subprocess.run([str(Path(sys.executable).with_name("k2")), "streams", "status", "--json"],
                            capture_output=True, text=True, timeout=60, env=os.environ)
    assert result.returncode == 0, result.stderr
    return {r["stream"]: r for r in json.loads(result.stdout)}


def _topic_records(stack) -> int:
    from confluent_kafka import Consumer, TopicPartition

    from k2.kafka_client import client_config

    consumer = Consumer({**client_config(stack), "group.id": "k2-health-page-test"})
    try:
        parts = consumer.list_topics(contracts.DLQ_TOPIC, timeout=10).topics[contracts.DLQ_TOPIC].partitions
        marks = [consumer.get_watermark_offsets(TopicPartition(contracts.DLQ_TOPIC, p), timeout=10) for p in parts]
    finally:
        consumer.close()
    return sum(high - low for low, high in marks)


def _silver_dlq_rows(stack) -> int:
    return catalog(stack).load_table(contracts.qualified(contracts.SILVER_DLQ_TABLE)).scan(
        selected_fields=("error_type",)).to_arrow().num_rows


def test_anonymous_requests_are_refused(base):
    for path, expected in (("/k2-health/data", 401), ("/k2-health/", 303)):
        request = urllib.request.Request(base + path)
        opener = urllib.request.build_opener(NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as refused:
            opener.open(request, timeout=30)
        assert refused.value.code == expected, path
        if expected == 303:
            assert "/auth/login" in refused.value.headers["Location"]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # surface the redirect itself as an HTTPError


def test_health_page_shows_the_stacks_figures(base, stack, seeded, worker, reason, browser_page):
    from playwright.sync_api import expect

    page = browser_page
    page.goto(base + "/k2-health/")  # anonymous: sent to Airflow's login page
    page.wait_for_url("**/auth/login**", timeout=WAIT_MS)
    page.locator("input[name=username]").fill(stack.airflow_user)
    page.locator("input[name=password]").fill(password(stack).reveal())
    page.locator("button[type=submit]").click()
    page.wait_for_url(lambda url: "/auth/login" not in url, timeout=WAIT_MS)

    page.goto(base + "/")
    page.get_by_label("K2 health").first.click()  # the entry in Airflow's navigation
    # The UI routes to /plugin/k2-health, and once the iframe has loaded it appends the
    # iframe's own path (/plugin/k2-health/k2-health/, a deep link); either may be current.
    page.wait_for_url(_on_the_plugin_route, timeout=WAIT_MS)
    health = page.frame_locator('iframe[src*="k2-health"]')

    # silver_dlq: the seeded reason and count, and as many rows as the table holds.
    expect(health.locator(f'#silver-dlq tr[data-reason="{reason}"]')).to_have_attribute(
        "data-count", str(SILVER_ROWS), timeout=WAIT_MS)
    expect(health.locator("#silver-dlq [data-records]")).to_have_attribute(
        "data-records", str(_silver_dlq_rows(stack)), timeout=WAIT_MS)
    # The DLQ topic: the records Kafka holds, and the seeded reason among the newest.
    expect(health.locator(f'#kafka-dlq tr[data-reason="{reason}"]')).to_have_attribute(
        "data-count", str(TOPIC_RECORDS), timeout=WAIT_MS)
    expect(health.locator("#kafka-dlq [data-records]")).to_have_attribute(
        "data-records", str(_topic_records(stack)), timeout=WAIT_MS)
    # The ledger's hours of the seeded symbol.
    expect(health.locator("#heatmap .heat")).to_have_attribute("data-source", "ledger", timeout=WAIT_MS)
    for row in seeded["ledger"]:
        cell = health.locator(f'#heatmap [data-symbol="{seeded["symbol"]}"][data-hour="{row["hour"].isoformat()}"]')
        expect(cell).to_have_attribute("data-status", row["status"], timeout=WAIT_MS)
        expect(cell).to_have_attribute("data-trades", str(row["gold_trades"]))
    # Streams as `k2 streams status` reports them.
    for stream, status in _streams_status().items():
        line = health.locator(f'#streams tr[data-stream="{stream}"]')
        expect(line).to_have_attribute("data-state", "running" if status["pid"] else "stopped", timeout=WAIT_MS)
        batch = (status["progress"] or {}).get("batch_id")
        expect(line).to_have_attribute("data-batch", "" if batch is None else str(batch))
    # The maintenance DAGs' newest runs, as Airflow's REST API lists them.
    api = AirflowApi(stack)
    for dag_id in MAINTENANCE_DAGS:
        runs = [r["dag_run_id"] for r in api.latest_runs(dag_id)]
        expect(health.locator(f'#dag-runs tr[data-dag="{dag_id}"] [data-run]')).to_have_count(len(runs))
        for run_id in runs:
            expect(health.locator(f'#dag-runs tr[data-dag="{dag_id}"] [data-run="{run_id}"]')).to_have_count(1)
    expect(health.locator("[data-unavailable]")).to_have_count(0, timeout=WAIT_MS)  # every section answered

    binance = health.locator('#workers tr[data-worker="binance"]')
    if worker is None:
        expect(binance).not_to_have_attribute("data-state", "down")
    else:
        expect(binance).to_have_attribute("data-messages", "1200", timeout=WAIT_MS)
        expect(binance).to_contain_text("bad_json 2")
        worker.trades += 250  # the next refresh's scrape gives a rate from the two
        expect(binance).to_have_attribute("data-messages", "1450", timeout=WAIT_MS)
        rate = float(binance.locator("td.num").first.inner_text().replace(",", ""))
        assert rate > 0
    kraken_served = _listening(stack.bind_host, worker_settings().metrics_port("kraken"))
    kraken = expect(health.locator('#workers tr[data-worker="kraken"]'))
    (kraken.not_to_have_attribute if kraken_served else kraken.to_have_attribute)("data-state", "down")

    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "health-page.png"))
    began = time.monotonic()
    answer = page.request.get(base + "/k2-health/data")
    took = time.monotonic() - began
    assert answer.status == 200 and took < 2.0, (answer.status, took)
    print(f"[health] /k2-health/data answered in {took:.2f} s (sections: {answer.json()['took_s']} s)")
    page.goto(base + "/k2-health/")  # the page alone, at full height
    expect(page.locator('#silver-dlq tr[data-reason]').first).to_be_visible(timeout=WAIT_MS)
    page.screenshot(path=str(SHOTS / "health-page-full.png"), full_page=True)
