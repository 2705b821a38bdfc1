"""The query service: one warm :class:`~mmsearch.engine.Engine` behind a small JSON-over-HTTP interface.

``POST /search`` takes a :func:`~mmsearch.service.protocol.search_request` and answers ``{"hits": [...]}``;
``GET /status`` answers ``Engine.status()``; ``GET /health`` answers the service's own facts (process, home,
requests answered). Every request carries the token of the discovery file
(header ``X-Mmsearch-Token``), so only whoever can read the home folder's ``service.json`` can search. Requests
are answered one at a time (the engine is not shared between threads); the service listens on the loopback
interface unless told otherwise.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmsearch.errors import MmsearchError
from mmsearch.service.protocol import (
    SERVICE_FILE,
    TOKEN_HEADER,
    ServiceInfo,
    error_to_json,
    hits_to_json,
    search_arguments,
)

if TYPE_CHECKING:
    from mmsearch.engine import Engine

log = logging.getLogger(__name__)
MAX_REQUEST_BYTES = 1 << 20


class QueryService:
    """Serves ``engine`` on ``host:port`` (port 0: any free one) until :meth:`shutdown`; see the module docs."""

    def __init__(self, engine: Engine, host: str = "127.0.0.1", port: int = 0) -> None:
        self.engine = engine
        self.token = secrets.token_urlsafe(24)
        self.requests = 0
        self._lock = threading.Lock()
        self._server = _listen(host, port, _handler_for(self))
        self._server.daemon_threads = True
        bound_host, bound_port = self._server.server_address[:2]
        self.url = f"http://{_url_host(str(bound_host))}:{bound_port}"
        self._home = Path(engine.settings.home)
        self._info = ServiceInfo(self.url, self.token, os.getpid(), engine.settings.database_url, str(self._home))

    def start(self) -> ServiceInfo:
        """Announce the service in the home folder; call :meth:`serve_forever` (or run it in a thread) next."""
        self._info.write(self._home)
        return self._info

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    def shutdown(self) -> None:
        """Stop serving and remove the discovery file (if it is still this service's)."""
        self._server.shutdown()
        self._server.server_close()
        current = ServiceInfo.read(self._home)
        if current is not None and current.token == self.token:
            (self._home / SERVICE_FILE).unlink(missing_ok=True)

    # -- requests -------------------------------------------------------------------------
    def authorised(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token.encode(), self.token.encode())

    def search(self, request: dict[str, Any]) -> dict[str, Any]:
        text, image, k, kind, options = search_arguments(request)
        with self._lock:
            self.requests += 1
            self.engine.check_model(request.get("model"))
            return hits_to_json(self.engine.search(text, image=image, k=k, kind=kind, **options))

    def health(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "home": str(self._home), "url": self.url, "requests": self.requests}

    def status(self) -> dict[str, Any]:
        with self._lock:
            self.requests += 1
            return self.engine.status().to_dict()


def _handler_for(service: QueryService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "mmsearch"

        def do_GET(self) -> None:
            if self.path == "/status":
                self._answer(service.status)
            elif self.path == "/health":
                self._answer(service.health)
            else:
                self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: GET {self.path}"})

        def do_POST(self) -> None:
            if self.path != "/search":
                self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: POST {self.path}"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_REQUEST_BYTES:
                self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "request too large"})
                return
            try:
                request = json.loads(self.rfile.read(length) or b"{}")
            except ValueError as exc:
                self._reply(HTTPStatus.BAD_REQUEST, {"error": f"request is not JSON: {exc}", "exit_code": 2})
                return
            self._answer(lambda: service.search(request))

        def _answer(self, work: Any) -> None:
            if not service.authorised(self.headers.get(TOKEN_HEADER)):
                self._reply(HTTPStatus.FORBIDDEN, {"error": f"missing or wrong {TOKEN_HEADER}"})
                return
            try:
                self._reply(HTTPStatus.OK, work())
            except (MmsearchError, ValueError, TypeError) as exc:  # what the engine raises for a bad search
                self._reply(HTTPStatus.BAD_REQUEST, error_to_json(exc))
            except Exception as exc:  # a bug: answer it, keep serving, and log it where the operator looks
                log.exception("search failed")
                self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, error_to_json(exc))

        def _reply(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.info("%s %s", self.address_string(), format % args)  # shown with `mmsearch -v serve`

    return Handler


class ServiceError(MmsearchError):
    """The service cannot start as asked (an address it cannot listen on)."""

    exit_code = 2


def _listen(host: str, port: int, handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A server bound to ``host:port``, IPv4 or IPv6 as ``host`` is (``::`` too); ServiceError where it cannot."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    except (socket.gaierror, UnicodeError) as exc:
        raise ServiceError(f"cannot listen on {host!r}: {exc}") from None

    class Server(ThreadingHTTPServer):
        address_family = family

    try:
        return Server((host, port), handler)
    except OSError as exc:
        raise ServiceError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
