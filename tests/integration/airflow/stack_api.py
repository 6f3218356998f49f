"""Small helpers over the running Airflow's REST API (/api/v2) for the Airflow tests."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from k2ops.stack.airflow import api_url, password


class AirflowApi:
    def __init__(self, settings):
        self.base = api_url(settings)
        body = json.dumps({"username": settings.airflow_user, "password": password(settings).reveal()})
        token = self._call("POST", "/auth/token", body.encode(), auth=False)["access_token"]
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def _call(self, method: str, path: str, body: bytes | None = None, auth: bool = True) -> dict:
        """One API call. Every call here is idempotent (reads, setting a state or a flag,
        asking for a token), so a timeout or a dropped connection is retried: on 2 cores
        shared with several Spark drivers the API server sometimes answers after 30 s."""
        headers = self.headers if auth else {"Content-Type": "application/json"}
        for attempt, timeout in enumerate((30, 60, 120)):
            req = urllib.request.Request(self.base + path, data=body, method=method, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    return json.loads(resp.read() or b"{}")
            except urllib.error.HTTPError:
                raise  # the server answered: a real error, not a slow one
            except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
                if attempt == 2:
                    raise
                print(f"[stack_api] {method} {path}: {exc!r}; retrying with a {timeout * 2} s timeout")
                time.sleep(2)
        raise AssertionError("unreachable")

    def runs(self, dag_id: str, states: tuple[str, ...] = ("queued", "running")) -> list[dict]:
        query = "&".join(f"state={s}" for s in states)
        return self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns?{query}&limit=100")["dag_runs"]

    def fail_run(self, dag_id: str, run_id: str) -> None:
        body = json.dumps({"state": "failed"}).encode()
        self._call("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", body)

    def is_paused(self, dag_id: str) -> bool:
        return bool(self._call("GET", f"/api/v2/dags/{dag_id}")["is_paused"])

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self._call("PATCH", f"/api/v2/dags/{dag_id}", json.dumps({"is_paused": paused}).encode())

    def latest_runs(self, dag_id: str, limit: int = 3) -> list[dict]:
        """The newest runs of ``dag_id`` by start date; none for a DAG Airflow does not know (yet)."""
        try:
            return self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns?order_by=-start_date&limit={limit}")["dag_runs"]
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return []
            raise
