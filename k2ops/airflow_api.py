"""A small client of Airflow 3's REST API (``/api/v2``) for `make run` and the tests.

Authenticates with the simple auth manager's token endpoint using the stack's login.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from k2.errors import K2Error
from k2.secret import Secret
from k2.settings import PlatformSettings


class AirflowApiError(K2Error, RuntimeError):
    pass


class AirflowApi:
    def __init__(self, settings: PlatformSettings, password: Secret) -> None:
        self.base = settings.airflow_api_url.rstrip("/")
        self.user = settings.airflow_user
        self.password = password
        self._token: str | None = None

    def _request(self, method: str, path: str, body: dict | None = None, auth: bool = True) -> Any:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                text = resp.read()
        except urllib.error.HTTPError as exc:
            raise AirflowApiError(f"{method} {path}: HTTP {exc.code}: {exc.read()[:300]!r}") from None
        return json.loads(text) if text else None

    def token(self) -> str:
        if self._token is None:
            body = {"username": self.user, "password": self.password.reveal()}
            self._token = self._request("POST", "/auth/token", body, auth=False)["access_token"]
        return self._token

    def dag(self, dag_id: str) -> dict | None:
        try:
            return self._request("GET", f"/api/v2/dags/{dag_id}")
        except AirflowApiError as exc:
            if "HTTP 404" in str(exc):
                return None
            raise

    def wait_for_dags(self, dag_ids: list[str], timeout: float = 180) -> None:
        """Wait until the dag-processor has parsed every DAG in ``dag_ids``."""
        deadline = time.monotonic() + timeout
        missing = list(dag_ids)
        while missing and time.monotonic() < deadline:
            missing = [d for d in missing if self.dag(d) is None]
            if missing:
                time.sleep(2)
        if missing:
            raise AirflowApiError(f"DAGs not parsed after {timeout:.0f}s: {missing}; see "
                                  "`k2 stack logs airflow-dag-processor` and `k2 airflow dags "
                                  "list-import-errors`")

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self._request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": paused})

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        run = self._request("POST", f"/api/v2/dags/{dag_id}/dagRuns",
                            {"logical_date": None, "conf": conf or {}})
        return run["dag_run_id"]

    def last_successful_run(self, dag_id: str) -> str | None:
        runs = self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns?state=success&limit=1")
        return runs["dag_runs"][0]["dag_run_id"] if runs["total_entries"] else None

    def recent_runs(self, dag_id: str, limit: int = 50) -> list[dict]:
        """The DAG's latest runs, newest start first."""
        return self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns?order_by=-start_date&limit={limit}")["dag_runs"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 900,
                     on_poll=None) -> str:
        """Poll until the run finishes; returns its final state (success/failed)."""
        deadline = time.monotonic() + timeout
        state = "queued"
        while time.monotonic() < deadline:
            state = self.run_state(dag_id, run_id)
            if on_poll:
                on_poll(state)
            if state in ("success", "failed"):
                return state
            time.sleep(3)
        raise AirflowApiError(f"{dag_id} run {run_id} still {state} after {timeout:.0f}s")
