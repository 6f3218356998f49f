"""Prometheus and Grafana in docker-compose.yaml: their configuration agrees with the code.

- docker/prometheus/prometheus.yml parses, and each scrape target is a compose service at
  the port K2's settings give it in that service's environment (workers: their metrics
  port; streams: the airflow-scheduler container, where their drivers run, on ports it
  exposes to the compose network);
- Grafana's provisioning points at that Prometheus and at the mounted dashboards folder;
- docker/grafana/dashboards/k2.json is a Grafana dashboard whose every panel queries the
  provisioned data source, and whose PromQL names only metrics the code registers
  (collected from the workers' collector and the streams' registry, not written here).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.registry import CollectorRegistry

from k2.config import load
from k2.contracts import STREAMS
from k2.settings import PlatformSettings
from spark_jobs.stream_metrics import StreamMetrics
from workers.metrics import WorkerCollector
from workers.settings import EXCHANGE_NAMES, WorkerSettings
from workers.stats import WorkerStats

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def _services() -> dict[str, dict]:
    return _compose()["services"]


def _environ(service: str) -> dict[str, str]:
    """The service's K2 settings as its processes read them, a placeholder for each secret file."""
    env = {k: str(v) for k, v in (_services()[service].get("environment") or {}).items() if k.startswith("K2_")}
    environ = {}
    for key, value in env.items():
        if value.startswith("/run/secrets/"):
            key, value = key.removesuffix("_FILE"), "placeholder"
        environ[key] = value
    return environ


def _scrape_targets() -> dict[str, list[str]]:
    config = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    jobs = {}
    for job in config["scrape_configs"]:
        assert job["job_name"] not in jobs, f"job {job['job_name']} twice"
        jobs[job["job_name"]] = [t for static in job["static_configs"] for t in static["targets"]]
    return jobs


def test_prometheus_scrapes_each_worker_at_its_settings_port():
    expected = set()
    for exchange in EXCHANGE_NAMES:
        service = f"worker-{exchange}"
        assert service in _services()
        port = load(WorkerSettings, _environ(service)).metrics_port(exchange)
        assert port > 0, f"{service} serves no metrics"
        expected.add(f"{service}:{port}")
        assert f"localhost:{port}/health" in " ".join(_services()[service]["healthcheck"]["test"])
    assert set(_scrape_targets()["k2-workers"]) == expected


def test_prometheus_scrapes_each_stream_where_its_driver_runs():
    """Airflow's LocalExecutor runs the stream runner tasks, hence their Spark drivers, in
    airflow-scheduler; each serves its own port there, exposed to the compose network only."""
    scheduler = _services()["airflow-scheduler"]
    settings = load(PlatformSettings, _environ("airflow-scheduler"))
    assert settings.bind_host == "0.0.0.0", "the drivers must listen beyond the container's loopback"
    ports = {settings.stream_metrics_port(stream) for stream in STREAMS}
    assert 0 not in ports and len(ports) == len(STREAMS)
    assert set(_scrape_targets()["k2-streams"]) == {f"airflow-scheduler:{p}" for p in ports}
    assert {int(p) for p in scheduler["expose"]} == ports
    assert "ports" not in scheduler, "stream metrics are not published on the host"


def test_ports_do_not_collide_with_the_other_stack_ports():
    settings, workers = load(PlatformSettings, {}), load(WorkerSettings, {})
    others = {settings.kafka_port, settings.kafka_controller_port, settings.registry_port, settings.pg_port,
              settings.airflow_port, *(workers.metrics_port(n) for n in EXCHANGE_NAMES), 9090, 3000}
    streams = {settings.stream_metrics_port(s) for s in STREAMS}
    assert not streams & others and len(streams) == len(STREAMS)


def test_prometheus_self_target_is_its_container_port():
    (target,) = _scrape_targets()["prometheus"]
    published = [p.rsplit(":", 1)[1] for p in _services()["prometheus"]["ports"]]
    assert target == f"localhost:{published[0]}"


def _provisioned_datasource() -> dict:
    doc = yaml.safe_load((DOCKER / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    assert doc["apiVersion"] == 1
    (source,) = doc["datasources"]
    return source


def test_grafana_provisioning_points_at_prometheus_and_the_mounted_dashboards():
    source = _provisioned_datasource()
    assert source["type"] == "prometheus" and source["uid"]
    published = _services()["prometheus"]["ports"][0].rsplit(":", 1)[1]
    assert source["url"] == f"http://prometheus:{published}"
    providers = yaml.safe_load((DOCKER / "grafana" / "provisioning" / "dashboards" / "k2.yaml").read_text())
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in _services()["grafana"]["volumes"] if v.startswith("./"))
    assert mounts["./docker/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./docker/grafana/provisioning"] == "/etc/grafana/provisioning"
    home = _services()["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == provider["options"]["path"] + "/k2.json"


# The dashboard --------------------------------------------------------------------------

def _dashboard() -> dict:
    return json.loads((DOCKER / "grafana" / "dashboards" / "k2.json").read_text())


def _queries(dashboard: dict) -> list[tuple[dict, dict]]:
    return [(panel, target) for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_the_dashboard_is_a_grafana_dashboard_on_the_provisioned_datasource():
    dash = _dashboard()
    assert isinstance(dash["schemaVersion"], int) and dash["schemaVersion"] >= 36
    assert dash["uid"] and dash["title"] and dash["panels"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
    uid = _provisioned_datasource()["uid"]
    for panel in dash["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid and target["expr"].strip(), panel["title"]


def registered_names() -> set[str]:
    """Every sample name the workers' collector and the streams' registry can expose."""
    suffixes = {"counter": ("_total", "_created"), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count", "_created"),
                "summary": ("", "_sum", "_count", "_created"), "info": ("_info",)}
    registry = CollectorRegistry()
    registry.register(WorkerCollector(WorkerStats("binance")))
    families = [*registry.collect(), *StreamMetrics("bronze_ingestion").registry.collect()]
    return {f.name + s for f in families for s in suffixes[f.type]}


PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or",
                "unless", "inf", "nan"}


def promql_metric_names(expr: str) -> set[str]:
    """The metric names of a PromQL expression: its identifiers less functions, keywords,
    label matchers, grouping labels, strings and ranges."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    return {n for n in re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", expr) if n.lower() not in PROMQL_WORDS}


def test_promql_metric_names_reads_names_only():
    expr = ('histogram_quantile(0.99, sum by (stream, phase, le) (rate(k2_stream_batch_duration_seconds_bucket'
            '{stream=~"bronze.*"}[$__rate_interval]))) / on (stream) group_left max without (x) (up{job="a"})'
            ' - time() + k2_worker_connected offset 5m')
    assert promql_metric_names(expr) == {"k2_stream_batch_duration_seconds_bucket", "up", "k2_worker_connected"}


def test_every_dashboard_query_names_only_registered_metrics():
    known = registered_names() | {"up"}  # Prometheus's own per target
    assert {"k2_worker_messages_total", "k2_stream_rows_in_total", "k2_stream_batch_duration_seconds_bucket",
            "k2_stream_source_lag_records", "k2_stream_lost_offsets_total"} <= known
    used = set()
    for panel, target in _queries(_dashboard()):
        names = promql_metric_names(target["expr"])
        assert names, f"{panel['title']}: no metric in {target['expr']!r}"
        assert names <= known, f"{panel['title']}: unknown {sorted(names - known)} in {target['expr']!r}"
        used |= names
    # Both halves are on it: the workers' and the streams'.
    assert any(n.startswith("k2_worker_") for n in used) and any(n.startswith("k2_stream_") for n in used)


@pytest.mark.parametrize("needed", ["k2_worker_messages_total", "k2_worker_reconnects_total",
                                    "k2_worker_errors_total", "k2_worker_delivery_failures_total",
                                    "k2_worker_dead_letters_total", "k2_stream_rows_in_total",
                                    "k2_stream_batch_duration_seconds_bucket", "k2_stream_source_lag_records",
                                    "k2_stream_batches_failed_total", "k2_stream_lost_offsets_total"])
def test_the_dashboard_shows(needed):
    assert any(needed in promql_metric_names(t["expr"]) for _, t in _queries(_dashboard()))
