"""The health page's web app, mounted in Airflow's api-server by the K2 health plugin.

``GET <prefix>/`` is the page (page.html: inline CSS and JS, no build step), which polls
``GET <prefix>/data`` (one :meth:`Collector.snapshot`, JSON) every
:data:`REFRESH_S` seconds.

**Within Airflow's login.** Airflow mounts a plugin's FastAPI app with ``app.mount()``,
which inherits none of the core API's authentication: a plugin must authenticate its own
routes (Airflow's plugin docs say so since apache/airflow#72655). Both routes depend on
``airflow.api_fastapi.core_api.security.get_user``, the dependency the core API itself
uses: it takes the JWT from an ``Authorization: Bearer`` header or from the UI's
``_token`` cookie (sent with the page, which the UI shows in an iframe of the same
origin) and asks the configured auth manager for the user. Without a valid token the
page redirects to the auth manager's login page and ``data`` answers 401.
"""

from __future__ import annotations

import functools
from pathlib import Path

URL_PREFIX = "/k2-health"  # where Airflow mounts the app (not one of its reserved prefixes)
REFRESH_S = 10
PAGE_FILE = Path(__file__).with_name("page.html")


@functools.cache
def page_html() -> str:
    return PAGE_FILE.read_text().replace("{{REFRESH_S}}", str(REFRESH_S))


def create_app(settings_loader=None):
    """The FastAPI app; the settings are read, and the collector made, at the first request."""
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import Depends, FastAPI, HTTPException, Request, status
    from fastapi.exception_handlers import http_exception_handler
    from fastapi.responses import HTMLResponse, RedirectResponse

    app = FastAPI(title="K2 health", docs_url=None, redoc_url=None, openapi_url=None)
    authenticated = [Depends(get_user)]

    @functools.cache
    def collector():
        from k2.settings import load_platform

        from .collect import Collector

        return Collector((settings_loader or load_platform)())

    @app.get("/", response_class=HTMLResponse, dependencies=authenticated)
    def page() -> HTMLResponse:
        return HTMLResponse(page_html(), headers={"Cache-Control": "no-store"})

    @app.get("/data", dependencies=authenticated)
    def data() -> dict:  # sync: FastAPI runs it in its thread pool, the snapshot waits on sources
        return collector().snapshot()

    @app.exception_handler(HTTPException)
    async def login_first(request: Request, exc: HTTPException):
        """The page sends an anonymous browser to Airflow's login, and back here after it."""
        anonymous = exc.status_code in (status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN)
        if anonymous and not request.url.path.endswith("/data"):  # the page, not its data
            from airflow.api_fastapi.app import get_auth_manager

            return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)),
                                    status_code=status.HTTP_303_SEE_OTHER)
        return await http_exception_handler(request, exc)

    return app
