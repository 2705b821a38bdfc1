"""What the query service and its clients exchange: search requests and results as JSON, and the discovery
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

from mmsearch.errors import ConfigError, MmsearchError
from mmsearch.kinds import IMAGE
from mmsearch.search.filters import Filters
from mmsearch.search.hits import Hit, Hits

SERVICE_FILE = "service.json"
"""The discovery file, in the home folder, while a service runs (readable by its owner only)."""
PROTOCOL = 2
"""2: ``/search`` answers the hits document (docs/json.md); a client never asks a service of another protocol."""
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


def search_request(
    text: str | None, image: str | None, k: int, kind: str, options: dict[str, Any], model: str | None = None
) -> dict[str, Any]:
    """A search as JSON: ``options`` are ``Engine.search`` keywords (``filters`` a :class:`Filters` or a dict)."""
    encoded = {name: value for name, value in options.items() if value is not None}
    filters = encoded.get("filters")
    if filters is not None and not isinstance(filters, dict):
        encoded["filters"] = filters_to_json(filters)
    return {"text": text, "image": image, "k": k, "kind": kind, "options": encoded, "model": model}


def search_arguments(request: dict[str, Any]) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
    """``(text, image, k, kind, options)`` of a request, for ``Engine.search`` (which checks their values and
    types: a wrong one is an :class:`~mmsearch.search.options.OptionError`); raises ConfigError when the
    request is no mapping."""
    try:
        options = dict(request.get("options") or {})
        filters = options.get("filters")
        if filters is not None:
            options["filters"] = filters_from_json(filters)
        text, image = request.get("text"), request.get("image")
        k, kind = request.get("k", 10), request.get("kind", IMAGE)  # checked by the search (Target, Query)
    except (TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"malformed search request: {exc}") from exc
    return text, image, k, kind, options


def filters_to_json(filters: Filters) -> dict[str, Any]:
    """Every field of :class:`Filters` (tuples as lists)."""
    return {name: _plain(value) for name, value in asdict(filters).items()}


def filters_from_json(data: dict[str, Any]) -> Filters:
    """:class:`Filters` from :func:`filters_to_json`'s output; a field left out (or null) keeps its default."""
    given: dict[str, Any] = {f.name: data[f.name] for f in fields(Filters) if data.get(f.name) is not None}
    values: dict[str, Any] = {name: tuple(v) if isinstance(v, list) else v for name, v in given.items()}
    return Filters(**values)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def hits_to_json(hits: list[Hit]) -> dict[str, Any]:
    """The hits document (:meth:`Hits.to_dict`)."""
    return (hits if isinstance(hits, Hits) else Hits(hits)).to_dict()


def hits_from_json(payload: dict[str, Any]) -> Hits:
    return Hits.from_dict(payload)


def error_to_json(error: BaseException) -> dict[str, Any]:
    return {"error": str(error), "exit_code": int(getattr(error, "exit_code", 1))}
