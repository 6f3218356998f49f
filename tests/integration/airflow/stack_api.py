"""Small helpers over the running Airflow's REST API (/api/v2) for the Airflow tests."""

from __future__ import annotations

import json
import urllib.request

from k2.stack.airflow import api_url, password


class AirflowApi:
    def __init__(self, settings):
        self.base = api_url(settings)
        body = json.dumps({"username": settings.airflow_user, "password": password(settings)})
        token = self._call("POST", "/auth/token", body.encode(), auth=False)["access_token"]
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def _call(self, method: str, path: str, body: bytes | None = None, auth: bool = True) -> dict:
        headers = self.headers if auth else {"Content-Type": "application/json"}
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"{}")

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
