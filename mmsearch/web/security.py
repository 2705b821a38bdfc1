"""The guard every request passes before the app sees it: host, credentials, cross-site checks, body limits.

Order matters: the ``Host`` header is checked first (a DNS-rebinding page cannot reach a loopback service), then
the credentials (the ``X-Mmsearch-Token`` header of API clients, or the session cookie a browser got from a
one-time sign-in link), *before* a single byte of the body is read; a cookie-authenticated request that changes
state must also carry ``X-Mmsearch-Request`` (which a cross-site form cannot send) and a same-origin ``Origin``.
Then the body is read, bounded in size, time and (for JSON) nesting depth, and handed on; an answer that has not
started within ``request_timeout_s`` is a 504. Every response carries a strict Content-Security-Policy and its
companions. (The time a client may take to send a request's head is bounded in ``server.py``.)
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from starlette.responses import HTMLResponse, JSONResponse, Response

from mmsearch.service.protocol import TOKEN_HEADER

log = logging.getLogger(__name__)
REQUEST_HEADER = "X-Mmsearch-Request"
"""Sent by the page's own scripts with every state-changing request: a cross-site form cannot set a header."""
SESSION_COOKIE = "mmsearch_session"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
PUBLIC_PREFIXES = ("/static/",)
PUBLIC_PATHS = frozenset({"/signin", "/api/v1/openapi.json", "/favicon.ico"})
UPLOAD_PATHS = frozenset({"/api/v1/search/image"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; media-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
SIGN_IN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>mmsearch: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="stylesheet" href="/static/style.css">
</head><body><main class="signin" id="signin-required"><h1>mmsearch</h1><p>{message}</p></main></body></html>"""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may cost: body bytes (uploads have their own), JSON depth, time."""

    max_body: int = 64 * 1024
    max_upload: int = 32 * 1024 * 1024
    max_json_depth: int = 32
    body_timeout_s: float = 30.0
    engine_wait_s: float = 60.0
    """How long a request waits for the engine (busy with other searches) before it is answered 503."""
    max_connections: int = 1024
    """Connections (idle ones too) and requests in flight at once; more are answered 503 at once (uvicorn's
    limit). Connections are cheap (no thread each); searches queue for the engine, ``engine_wait_s`` at most."""
    request_timeout_s: float = 120.0
    """How long the app may take to start its answer (a search stuck past it is answered 504, not waited for)."""
    header_timeout_s: float = 10.0
    """How long a connection may take to send a request's head (a silent or slow-loris client is closed)."""


class Auth:
    """The API token, browser sessions and one-time sign-in codes. Thread-safe."""

    def __init__(self, token: str | None = None, code_ttl_s: float = 3600.0) -> None:
        self.token = token or secrets.token_urlsafe(32)
        self._sessions: set[str] = set()
        self._codes: dict[str, float] = {}
        self._code_ttl_s = code_ttl_s
        self._lock = threading.Lock()

    def token_ok(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), self.token.encode())

    def session_ok(self, value: str | None) -> bool:
        if not value:
            return False
        with self._lock:
            return any(hmac.compare_digest(value.encode(), known.encode()) for known in self._sessions)

    def new_code(self) -> str:
        """A sign-in code, good once, for ``code_ttl_s`` seconds (``/signin?code=...``)."""
        code = secrets.token_urlsafe(24)
        with self._lock:
            now = time.monotonic()
            self._codes = {known: until for known, until in self._codes.items() if until > now}
            self._codes[code] = now + self._code_ttl_s
        return code

    def redeem(self, code: str | None) -> str | None:
        """A new session for a valid, unused code (which is spent); None otherwise."""
        if not code:
            return None
        with self._lock:
            until = self._codes.pop(code, None)
            if until is None or until < time.monotonic():
                return None
            session = secrets.token_urlsafe(32)
            self._sessions.add(session)
            return session


class BodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Guard:
    """ASGI middleware: see the module docs. ``allowed_hosts`` None accepts any Host (a non-loopback bind)."""

    def __init__(self, app: Any, auth: Auth, limits: Limits, allowed_hosts: frozenset[str] | None) -> None:
        self.app = app
        self.auth = auth
        self.limits = limits
        self.allowed_hosts = allowed_hosts
        self._late: set[asyncio.Future[None]] = set()
        """Requests answered 504 whose work still runs (referenced until it ends)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_security_headers(send, scope)
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        try:
            body = await self._body(scope, headers, receive)
        except BodyError as exc:
            await _error(exc.status, str(exc))(scope, receive, send)
            return
        await self._in_time(scope, _replay(body, receive), send)

    async def _in_time(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app's answer, or 504 when it has not started within ``request_timeout_s``. The late work (a search
        in a thread cannot be interrupted) finishes in the background and its answer is dropped."""
        state = {"started": False, "late": False}

        async def tracked(message: Message) -> None:
            if state["late"]:
                return
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, tracked))
        done, _ = await asyncio.wait({task}, timeout=self.limits.request_timeout_s)
        if task in done or state["started"]:
            await task  # done (its exception, if any, goes on), or streaming an answer already begun
            return
        state["late"] = True
        self._late.add(task)
        task.add_done_callback(self._forget)
        limit = self.limits.request_timeout_s
        await _error(504, f"the request took longer than {limit:g} s; try again in a moment")(scope, receive, send)

    def _forget(self, task: asyncio.Future[None]) -> None:
        self._late.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a request answered 504 failed later", exc_info=task.exception())

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> Response | None:
        if self.allowed_hosts is not None and _host_name(headers.get("host", "")) not in self.allowed_hosts:
            return _error(421, "this service answers only to its own address (Host header refused)")
        path, method = scope["path"], scope["method"]
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return None
        if self.auth.token_ok(headers.get(TOKEN_HEADER.lower())):
            return None
        if not self.auth.session_ok(_cookie(headers.get("cookie", ""), SESSION_COOKIE)):
            if path == "/" and method in SAFE_METHODS:
                message = "Sign in with the link <code>mmsearch serve</code> printed."
                return HTMLResponse(SIGN_IN_PAGE.format(message=message), status_code=401)
            return _error(401, f"sign in first, or send the token in the {TOKEN_HEADER} header")
        if method not in SAFE_METHODS:
            if headers.get(REQUEST_HEADER.lower()) != "1":
                return _error(403, f"cross-site request refused (no {REQUEST_HEADER} header)")
            origin = headers.get("origin")
            if origin is not None and origin != f"{scope.get('scheme', 'http')}://{headers.get('host', '')}":
                return _error(403, "cross-site request refused (foreign Origin)")
        return None

    async def _body(self, scope: Scope, headers: dict[str, str], receive: Receive) -> bytes:
        limit = self.limits.max_upload if scope["path"] in UPLOAD_PATHS else self.limits.max_body
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise BodyError(400, "malformed Content-Length header")
            if int(declared) > limit:
                raise BodyError(413, f"request body over the limit of {limit:,} bytes")
        elif "transfer-encoding" not in headers:
            return b""
        try:
            body = await asyncio.wait_for(_read_body(receive, limit), self.limits.body_timeout_s)
        except asyncio.TimeoutError:
            raise BodyError(408, "the request body did not arrive in time") from None
        if body and "json" in headers.get("content-type", "") and _depth(body) > self.limits.max_json_depth:
            raise BodyError(400, f"JSON nested deeper than {self.limits.max_json_depth} levels")
        return body


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BodyError(400, "the client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyError(413, f"request body over the limit of {limit:,} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _with_security_headers(send: Send, scope: Scope) -> Send:
    async def secured(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            # the request log (`mmsearch -v serve`): method, path and status; never the query string (sign-in codes)
            log.info("%s %s %s", scope["method"], scope["path"], message["status"])
        await send(message)

    return secured


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message, "exit_code": 2}, status_code=status)


def _depth(body: bytes) -> int:
    """The deepest bracket nesting of a JSON text (brackets inside strings count too: an over-estimate)."""
    depth = deepest = 0
    for byte in body:
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth -= 1
    return deepest


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None
