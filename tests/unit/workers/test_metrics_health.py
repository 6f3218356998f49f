import json
import urllib.error
import urllib.request

from workers.metrics import health, serve
from workers.stats import ShardState, WorkerStats


def test_health_states():
    s = WorkerStats("kraken", started_at=1000.0)
    assert health(s, 10, now=1001.0)[0] == 200  # starting grace
    assert health(s, 10, now=1020.0)[0] == 503  # never connected after the grace
    s.connected, s.last_data_at = True, 1019.0
    status, body = health(s, 10, now=1020.0)
    assert (status, body["status"], body["last_message_age_s"]) == (200, "ok", 1.0)
    assert health(s, 10, now=1040.0)[0] == 503  # connected but silent: unhealthy


def test_metrics_endpoint_exposes_worker_counters():
    s = WorkerStats("binance")
    s.trades, s.delivered, s.delivery_failures = 10, 9, 1
    s.backfill_pending = 3
    s.dead_letters["malformed_json"] = 2
    s.reconnects["stall"] = 1
    s.produce_latency.observe(0.004)
    s.shards.update({1: ShardState(symbols=1024, connected=True), 2: ShardState(symbols=3, connected=False)})
    server, stop = serve(s, "127.0.0.1", 0, stale_after_s=60)
    port = server.server_address[1]
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        for line in [
            'k2_worker_messages_total{exchange="binance"} 10.0',
            'k2_worker_delivered_total{exchange="binance"} 9.0',
            'k2_worker_delivery_failures_total{exchange="binance"} 1.0',
            'k2_worker_errors_total{exchange="binance",kind="malformed_json"} 2.0',
            'k2_worker_reconnects_total{exchange="binance",reason="stall"} 1.0',
            'k2_worker_produce_latency_seconds_bucket{exchange="binance",le="0.005"} 1.0',
            'k2_worker_queue_depth{exchange="binance"} 0.0',
            'k2_worker_backfill_pending{exchange="binance"} 3.0',
            'k2_worker_shard_connected{exchange="binance",shard="1"} 1.0',
            'k2_worker_shard_connected{exchange="binance",shard="2"} 0.0',
            'k2_worker_shard_symbols{exchange="binance",shard="1"} 1024.0',
            'k2_worker_shard_symbols{exchange="binance",shard="2"} 3.0',
        ]:
            assert line in text, line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health") as resp:
            assert resp.status == 200  # within the start-up grace
            body = json.loads(resp.read())
            assert body["status"] == "starting" and body["shards_connected"] == [1, 2]
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/nope")
            raise AssertionError("expected 404")
        except urllib.error.HTTPError as err:
            assert err.code == 404
    finally:
        stop()
