"""Asking a running query service (``mmsearch serve``) instead of loading the engine: no torch, no numpy, no
database.

:func:`remote_search` answers None whenever no service can answer for this home and database (none running,
a stale discovery file, another database, the service not reachable): the caller then searches itself.
:class:`RemoteSearcher` is the :class:`~mmsearch.searcher.Searcher` built on it (it does exactly that).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmsearch.kinds import IMAGE
from mmsearch.search.hits import Hits
from mmsearch.search.paths import client_path
from mmsearch.service.protocol import TOKEN_HEADER, RemoteError, ServiceInfo, search_request

if TYPE_CHECKING:
    from types import TracebackType

    from mmsearch.searcher import Searcher

TIMEOUT_S = 60.0
"""How long a search may take at most; a service that is gone refuses the connection at once."""
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
    request = search_request(text, image, k, kind, options, model)
    payload = _post(info, "/search", request)
    return None if payload is None else Hits.from_dict(payload)


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
        if self._local is None:
            picture = client_path(image) if image is not None else None  # the service's folder is not ours
            hits = remote_search(self.info, text, picture, k, kind, options, model=self.model)
            if hits is not None:
                return hits
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


def _post(info: ServiceInfo, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", TOKEN_HEADER: info.token}
    request = urllib.request.Request(info.url + path, data=data, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=TIMEOUT_S) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            error = json.loads(exc.read())
        except ValueError:
            error = {"error": f"service answered {exc.code}"}
        if exc.code == 403:
            return None  # another service took the file over meanwhile: search locally
        raise RemoteError(str(error.get("error")), int(error.get("exit_code", 1))) from None
    except (urllib.error.URLError, OSError, ValueError):
        return None  # not reachable (stopped, crashed): search locally
