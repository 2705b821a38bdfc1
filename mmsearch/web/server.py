"""Running the app under uvicorn: the socket, the discovery file (``service.json``), sign-in links, shutdown.

Binds 127.0.0.1 unless told otherwise. Every API request needs the token of the discovery file (or a browser's
sign-in cookie); on a non-loopback address the Host check is off (the name people use is not known) and
:attr:`WebServer.exposed` says so, for the caller to warn. uvicorn's access log is off: no URL (and so no sign-in
code) is ever logged.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from mmsearch.errors import ConfigError
from mmsearch.service.protocol import SERVICE_FILE, ServiceInfo
from mmsearch.web.app import create_app
from mmsearch.web.security import LOOPBACK_HOSTS, Auth, Limits

if TYPE_CHECKING:
    from mmsearch.engine import Engine

BACKLOG = 1024
MAX_HEAD_BYTES = 16 * 1024
"""The request line and headers together (h11's limit; more is answered 400)."""


class WebServer:
    """Serves ``engine``'s web app on ``host:port`` (port 0: any free one) until :meth:`shutdown`."""

    def __init__(self, engine: Engine, host: str = "127.0.0.1", port: int = 0, limits: Limits | None = None) -> None:
        import uvicorn

        self.limits = limits or Limits()
        self.auth = Auth()
        self.exposed = not _is_loopback(host)
        self._socket = _bind(host, port)
        bound_host, bound_port = self._socket.getsockname()[:2]
        self.url = f"http://{_url_host(str(bound_host))}:{bound_port}"
        self.app = create_app(
            engine,
            auth=self.auth,
            limits=self.limits,
            allowed_hosts=None if self.exposed else LOOPBACK_HOSTS,
            url=self.url,
        )
        self.service = self.app.state.web
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            server_header=False,
            limit_concurrency=self.limits.max_connections,
            http=head_timeout_protocol(self.limits.header_timeout_s),
            h11_max_incomplete_event_size=MAX_HEAD_BYTES,
            timeout_keep_alive=5,
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._home = Path(engine.settings.home)
        self._info = ServiceInfo(self.url, self.auth.token, os.getpid(), engine.settings.database_url, str(self._home))

    @property
    def token(self) -> str:
        return self.auth.token

    def start(self) -> ServiceInfo:
        """Announce the service in the home folder; call :meth:`serve_forever` (or run it in a thread) next."""
        self.service.prune_thumbnails()
        self._info.write(self._home)
        return self._info

    def signin_url(self) -> str:
        """A one-time link that signs a browser in (a cookie), as Jupyter's token link does."""
        return f"{self.url}/signin?code={self.auth.new_code()}"

    def serve_forever(self) -> None:
        self._server.run(sockets=[self._socket])

    @property
    def started(self) -> bool:
        return self._server.started

    def shutdown(self) -> None:
        """Stop serving and remove the discovery file (if it is still this service's)."""
        self._server.should_exit = True
        current = ServiceInfo.read(self._home)
        if current is not None and current.token == self.auth.token:
            (self._home / SERVICE_FILE).unlink(missing_ok=True)

    def close(self) -> None:
        self._socket.close()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=BACKLOG, reuse_port=False)
    except (OSError, OverflowError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ConfigError(f"cannot listen on {host}:{port}: {reason}") from exc


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def head_timeout_protocol(timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with a deadline on each request's head: uvicorn has none (its keep-alive timer is
    reset by every byte), so a client that connects and sends nothing, or a header a byte at a time, would hold
    its connection forever. The deadline runs from the connection and from the end of each answer; a request
    whose head arrived is bounded by the Guard's body and request timeouts instead."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeadTimeoutProtocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_head_deadline()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_head_deadline()

        def _arm_head_deadline(self) -> None:
            self.loop.call_later(timeout_s, self._head_deadline, self.cycle)

        def _head_deadline(self, cycle: object) -> None:
            # still the same cycle (none, or the one just answered): no new request head has come in since
            if self.cycle is cycle and not self.transport.is_closing():
                self.timeout_keep_alive_handler()

    return HeadTimeoutProtocol
