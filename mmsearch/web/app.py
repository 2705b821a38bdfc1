"""The application: the API router, the page (``GET /``), the one-time sign-in, static files, error answers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

import mmsearch
from mmsearch.errors import MmsearchError, NoIndexError, UnreadableMediaError
from mmsearch.web.jobs import JobConflict
from mmsearch.web.routes import Answer, router
from mmsearch.web.security import LOOPBACK_HOSTS, SESSION_COOKIE, SIGN_IN_PAGE, Auth, Guard, Limits
from mmsearch.web.service import BusyError, NotFoundError, WebService
from mmsearch.web.uploads import UploadError

if TYPE_CHECKING:
    from mmsearch.engine import Engine

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
STATUS_OF: list[tuple[type[Exception], int]] = [
    (NotFoundError, 404),
    (BusyError, 503),
    (JobConflict, 409),
    (NoIndexError, 409),
    (UploadError, 400),
    (UnreadableMediaError, 422),
]
SIGNED_IN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>mmsearch</title>
<meta http-equiv="refresh" content="0;url=/"></head><body><p><a href="/">Signed in: continue</a></p></body></html>"""


def create_app(
    engine: Engine,
    *,
    auth: Auth | None = None,
    limits: Limits | None = None,
    allowed_hosts: frozenset[str] | None = LOOPBACK_HOSTS,
    open_engine: Callable[[], Engine] | None = None,
    url: str = "",
) -> FastAPI:
    """The app around ``engine``. ``allowed_hosts``: the Host names accepted (None: any, for a non-loopback
    bind); ``open_engine`` opens the engines of ingest jobs (default: one like ``engine``)."""
    app = FastAPI(
        title="mmsearch",
        version=mmsearch.__version__,
        summary="Cross-modal semantic search over your own photos, captions and recordings.",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    service = WebService(engine, auth or Auth(), limits or Limits(), open_engine, url)
    app.state.web = service
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _add_pages(app, service)
    _add_error_answers(app)
    app.add_middleware(Guard, auth=service.auth, limits=service.limits, allowed_hosts=allowed_hosts)
    return app


def _add_pages(app: FastAPI, service: WebService) -> None:
    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers={"Cache-Control": "no-store"})

    @app.get("/signin", include_in_schema=False)
    def signin(code: str = Query("", max_length=100)) -> HTMLResponse:
        session = service.auth.redeem(code)
        if session is None:
            message = "This sign-in link is spent or unknown (each works once): ask <code>mmsearch serve</code> again."
            return HTMLResponse(SIGN_IN_PAGE.format(message=message), status_code=403)
        # A page that moves on by itself (not a redirect): the SameSite=Strict cookie then goes with the next request
        # even when the link was opened from another site or application.
        response = HTMLResponse(SIGNED_IN_PAGE, headers={"Cache-Control": "no-store"})
        response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="strict", path="/")
        return response


def _add_error_answers(app: FastAPI) -> None:
    @app.exception_handler(MmsearchError)
    async def library_error(request: Request, exc: MmsearchError) -> Answer:
        status = next((code for kind, code in STATUS_OF if isinstance(exc, kind)), 400)
        return Answer({"error": str(exc), "exit_code": exc.exit_code}, status_code=status)

    @app.exception_handler(ValueError)
    @app.exception_handler(TypeError)
    async def bad_request(request: Request, exc: Exception) -> Answer:  # what the engine raises for bad options
        return Answer({"error": str(exc), "exit_code": 2}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Answer:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        message = f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request"
        detail = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in errors[:20]]
        return Answer({"error": message, "exit_code": 2, "detail": detail}, status_code=422)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> Answer:
        log.error("request failed: %s %s", request.method, request.url.path, exc_info=exc)
        return Answer({"error": f"internal error: {type(exc).__name__}", "exit_code": 1}, status_code=500)
