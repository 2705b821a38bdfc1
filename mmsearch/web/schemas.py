"""The API's JSON shapes, in one place: thin models over what the library's ``to_dict()`` methods produce.

A hit is exactly :meth:`mmsearch.search.Hit.to_dict`, a search answer is what ``mmsearch query --json`` prints,
a status is :meth:`mmsearch.status.StatusReport.to_dict`, an ingest report :meth:`IngestReport.to_dict`; when a
shared, versioned schema for these lands, these models are the one place to point at it.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class HitModel(BaseModel):
    """One result (``Hit.to_dict()``): ``id`` is the asset id for thumbnails, media and "more like this"."""

    model_config = ConfigDict(extra="allow")  # every field of the shared hits schema passes through

    rank: int
    score: float
    id: int
    path: str
    kind: str
    width: int | None = None
    height: int | None = None
    match: str = "image"
    text: str | None = None
    start: float | None = None
    end: float | None = None
    item_id: int | None = None
    evidence: dict[str, Any] | None = None


class SearchResult(BaseModel):
    """What ``mmsearch query --json`` prints (mmsearch/schemas/hits.json): the query, what was looked for, how,
    and the hits; ``image`` is ``upload:NAME`` or ``asset:ID`` over HTTP."""

    model_config = ConfigDict(extra="allow")
    schema_version: int
    query: str | None
    image: str | None
    kind: str
    mode: str
    k: int
    hits: list[HitModel]
    note: str | None = None


class ErrorModel(BaseModel):
    error: str
    exit_code: int = 1


class HealthModel(BaseModel):
    pid: int
    home: str
    url: str
    requests: int
    version: str


class StatusModel(BaseModel):
    """``StatusReport.to_dict()`` (every field it has is passed through)."""

    model_config = ConfigDict(extra="allow")
    home: str
    database: str
    vectors: int
    files_by_kind: dict[str, int]


class AssetTextModel(BaseModel):
    id: int
    kind: str
    source: str
    text: str
    start: float | None = None
    end: float | None = None


class AssetModel(BaseModel):
    """``Asset.to_dict()``: an indexed file with its captions and transcript segments."""

    id: int
    path: str
    kind: str
    width: int | None = None
    height: int | None = None
    size: int
    mtime_ns: int
    modified: float
    taken: float | None = None
    texts: list[AssetTextModel]


class IngestRequest(BaseModel):
    """Start an ingest of a folder on the server's machine, with optional caption manifests."""

    model_config = ConfigDict(extra="forbid")
    folder: str = Field(min_length=1, max_length=4096)
    captions: list[str] = Field(default_factory=list, max_length=16)
    thumbnails: bool = False
    """Also make the grid thumbnails of the folder's images now (else each is made on its first request)."""


JobState = Literal["running", "done", "failed", "cancelled"]


class JobModel(BaseModel):
    """An ingest job: progress while it runs, then ``report`` (``IngestReport.to_dict()``) or ``error``."""

    id: str
    folder: str
    thumbnails: bool = False
    state: JobState
    phase: str | None = None
    done: int = 0
    total: int = 0
    started: float
    finished: float | None = None
    report: dict[str, Any] | None = None
    error: str | None = None


class SigninLinkModel(BaseModel):
    url: str


def finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (JSON has no NaN or infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value
