"""The K2 health page as an Airflow 3 plugin: a "K2 health" entry in the UI's navigation,
shown in the UI (an iframe of the same origin) and served by a FastAPI app mounted in the
api-server at ``/k2-health`` (see k2_airflow/health/app.py; it requires Airflow's login).

Airflow's plugin manager imports this file (the only one it loads from plugins/, see
.airflowignore) in every Airflow process; the app reads nothing until its first request.
"""

from __future__ import annotations

import functools

from airflow.plugins_manager import AirflowPlugin

from k2_airflow.health.app import URL_PREFIX, create_app

NAV_ROUTE = URL_PREFIX.strip("/")  # the UI shows the page at /plugin/k2-health


@functools.cache
def _apps() -> tuple[dict, ...]:
    return ({"app": create_app(), "url_prefix": URL_PREFIX, "name": "K2 health"},)


class _BuiltOnFirstUse:
    """``fastapi_apps``, built when Airflow first reads it. Only the api-server does; building
    the app imports Airflow's API security stack (seconds of CPU), which every other process
    that loads plugins (scheduler, dag-processor, each task, each CLI command) would pay."""

    def __get__(self, obj: object, owner: type) -> list[dict]:
        return list(_apps())


class K2HealthPlugin(AirflowPlugin):
    name = "k2_health"
    fastapi_apps = _BuiltOnFirstUse()
    external_views = [{
        "name": "K2 health",
        "href": f"{NAV_ROUTE}/",  # relative to the UI's base URL, as Airflow asks
        "url_route": NAV_ROUTE,  # shown inside the UI, not in a new tab
        "destination": "nav",
        "nav_top_level": True,  # on the toolbar itself, not in a "Plugins" menu
    }]
