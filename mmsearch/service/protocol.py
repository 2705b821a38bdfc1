"""What the service and its clients exchange: searches as query parameters, results as JSON, and the discovery
file a running service leaves in its home (address, access token, database).

Kept free of torch, SQLAlchemy and the engine: the client side imports this and nothing heavy.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from mmsearch.errors import MmsearchError
from mmsearch.search.hits import Hit, Hits

SERVICE_FILE = "service.json"
"""The discovery file, in the home folder, while a service runs (readable by its owner only)."""
PROTOCOL = 2
"""2: the FastAPI app's ``/api/v1`` routes (1 was the http.server service's ``POST /search``)."""
API = "/api/v1"
TOKEN_HEADER = "X-Mmsearch-Token"


class RemoteError(MmsearchError):
    """A search the service refused or failed, with the exit code the same search would give locally."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class ServiceInfo:
    """A running service: where it listens, the token every request must carry, and what it serves."""

    url: str
    token: str
    pid: int
    database_url: str
    home: str
    protocol: int = PROTOCOL

    @classmethod
    def read(cls, home: Path) -> ServiceInfo | None:
        """The service of ``home``, or None where none was started (or the file is unreadable or foreign)."""
        try:
            data = json.loads((home / SERVICE_FILE).read_text(encoding="utf-8"))
            info = cls(**{f.name: data[f.name] for f in fields(cls)})
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return info if info.protocol == PROTOCOL else None

    def write(self, home: Path) -> Path:
        """Write the discovery file atomically, readable by the owner only (it holds the token)."""
        home.mkdir(parents=True, exist_ok=True)
        target = home / SERVICE_FILE
        handle, temporary = tempfile.mkstemp(dir=home, prefix=".service-", suffix=".json")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(asdict(self), out)
            os.chmod(temporary, 0o600)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return target

    def alive(self) -> bool:
        """Whether the process that wrote the file still exists (a crashed service leaves its file behind)."""
        if os.name == "nt":  # signal 0 is CTRL_C_EVENT there: never send it; a dead service refuses connections
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, owned by someone else
            return True
        return True


def search_query(
    text: str | None, k: int, kind: str, options: dict[str, Any], model: str | None = None
) -> list[tuple[str, str]]:
    """A search as the query parameters of ``GET /api/v1/search`` (and ``POST /api/v1/search/image``):
    ``options`` are ``Engine.search`` keywords (``filters`` a :class:`Filters`, ``weights`` a dict)."""
    params: list[tuple[str, str]] = [("k", str(k)), ("kind", kind)]
    if text is not None:
        params.append(("q", text))
    if model:
        params.append(("model", model))
    for name, value in options.items():
        if value is None or name == "filters":
            continue
        if name == "weights":
            params += [("weight", f"{retriever}={weight!r}") for retriever, weight in value.items()]
        elif isinstance(value, bool):
            params.append((name, "true" if value else "false"))
        else:
            params.append((name, repr(value) if isinstance(value, float) else str(value)))
    filters = options.get("filters")
    if filters is not None:
        if filters.path:
            params.append(("path", filters.path))
        params += [("ext", ext) for ext in filters.ext]
        params += [
            (name, repr(float(when)))
            for name, when in (("since", filters.since), ("until", filters.until))
            if when is not None
        ]
    return params


def hits_to_json(hits: list[Hit]) -> dict[str, Any]:
    """The hits document of ``hits`` (a :class:`Hits` keeps what was asked; a plain list asks the defaults)."""
    return (hits if isinstance(hits, Hits) else Hits(hits)).to_dict()


def hits_from_json(payload: dict[str, Any]) -> Hits:
    """The hits document (``Hits.to_dict``) back into :class:`Hits`."""
    return Hits.from_dict(payload)
