"""Asking a running service (``mmsearch serve``) instead of loading the engine: no torch, no numpy, no database.

A text search is ``GET /api/v1/search?q=...``; an image search uploads the picture (``POST
/api/v1/search/image``, multipart): the service never opens a path it is sent. :func:`remote_search` answers None
whenever no service can answer for this home and database (none running, a stale discovery file, another
database, the service not reachable, the image not readable here): the caller then searches itself.
:class:`RemoteSearcher` is the :class:`~mmsearch.searcher.Searcher` built on it (it does exactly that).
"""

from __future__ import annotations

import json
import os
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmsearch.kinds import IMAGE
from mmsearch.search.hits import Hits
from mmsearch.service.protocol import API, TOKEN_HEADER, RemoteError, ServiceInfo, hits_from_json, search_query

if TYPE_CHECKING:
    from types import TracebackType

    from mmsearch.searcher import Searcher

TIMEOUT_S = 60.0
"""How long a search may take at most; a service that is gone refuses the connection at once."""
MAX_UPLOAD_BYTES = 32 * 1024 * 1024
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy


def find_service(home: Path, database_url: str) -> ServiceInfo | None:
    """The running service of ``home`` serving ``database_url``, if any."""
    info = ServiceInfo.read(home)
    if info is None or info.database_url != database_url or not info.alive():
        return None
    return info


def remote_search(
    info: ServiceInfo,
    text: str | None,
    image: str | None,
    k: int,
    kind: str,
    options: dict[str, Any],
    model: str | None = None,
) -> Hits | None:
    """The service's hits for this search; None if it cannot be reached. Raises :class:`RemoteError` when the
    service answers with an error (the same error a local search would raise)."""
    query = urllib.parse.urlencode(search_query(text, k, kind, options, model))
    if image is None:
        request = urllib.request.Request(f"{info.url}{API}/search?{query}", method="GET")
    else:
        try:
            with open(image, "rb") as handle:
                picture = handle.read(MAX_UPLOAD_BYTES + 1)
        except OSError:
            return None  # searching here gives the proper error for an unreadable image
        body, content_type = _multipart("image", Path(image).name, picture)
        request = urllib.request.Request(f"{info.url}{API}/search/image?{query}", data=body, method="POST")
        request.add_header("Content-Type", content_type)
    request.add_header(TOKEN_HEADER, info.token)
    payload = _send(request)
    return None if payload is None else hits_from_json(payload)


class RemoteSearcher:
    """Searches through a running service, with :meth:`Engine.search`'s signature; where the service does not
    answer (stopped meanwhile), through ``local()``, a searcher in this process, opened then."""

    def __init__(self, info: ServiceInfo, *, model: str | None = None, local: Callable[[], Searcher]) -> None:
        self.info = info
        self.model = model
        self._open_local = local
        self._local: Searcher | None = None

    def search(
        self,
        text: str | None = None,
        *,
        image: str | os.PathLike[str] | None = None,
        k: int = 10,
        kind: str = IMAGE,
        **options: Any,
    ) -> Hits:
        # The service takes images as uploads, never paths: a query naming images inside its text (image:...)
        # is searched here, where those paths mean what the user meant.
        if self._local is None and not (text and "image:" in text):
            picture = os.path.abspath(Path(image).expanduser()) if image is not None else None  # read here, uploaded
            hits = remote_search(self.info, text, picture, k, kind, options, model=self.model)
            if hits is not None:
                hits.asked = replace(hits.asked, image=picture)  # the service saw an upload; the user named this file
                return hits
        if self._local is None:
            self._local = self._open_local()
        return self._local.search(text, image=image, k=k, kind=kind, **options)

    def close(self) -> None:
        if self._local is not None:
            self._local.close()

    def __enter__(self) -> RemoteSearcher:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def _multipart(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = f"mmsearch-{secrets.token_hex(16)}"
    safe_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename)
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{safe_name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _send(request: urllib.request.Request) -> dict[str, Any] | None:
    try:
        with _OPENER.open(request, timeout=TIMEOUT_S) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403, 421):
            return None  # another service took the file over meanwhile, or not ours to ask: search locally
        try:
            error = json.loads(exc.read())
        except ValueError:
            error = {"error": f"service answered {exc.code}"}
        if exc.code >= 500 or "error" not in error:
            return None  # the service failed: searching here gives the real answer
        raise RemoteError(str(error["error"]), int(error.get("exit_code", 1))) from None
    except (urllib.error.URLError, OSError, ValueError):
        return None  # not reachable (stopped, crashed): search locally
