"""What the routes share: the one warm engine (used by one request at a time), thumbnails, uploads, ingest jobs."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import mmsearch
from mmsearch.assets import Asset
from mmsearch.errors import MmsearchError
from mmsearch.web.jobs import IngestJobs
from mmsearch.web.security import Auth, Limits
from mmsearch.web.thumbnails import Thumbnails

if TYPE_CHECKING:
    from mmsearch.engine import Engine

T = TypeVar("T")
UPLOADS = "uploads"


class BusyError(MmsearchError):
    """The engine stayed busy longer than a request may wait."""


class NotFoundError(MmsearchError):
    """No such asset (or nothing of the asked kind for it)."""

    exit_code = 2


class WebService:
    """The state of one app: ``engine`` serves every request, one at a time (it is not shared between threads)."""

    def __init__(
        self,
        engine: Engine,
        auth: Auth,
        limits: Limits,
        open_engine: Callable[[], Engine] | None = None,
        url: str = "",
    ) -> None:
        self.engine = engine
        self.auth = auth
        self.limits = limits
        self.url = url
        self.requests = 0
        self.home = Path(engine.settings.home)
        self.uploads = self.home / UPLOADS
        self.thumbnails = Thumbnails(self.home, engine.settings.max_image_pixels)
        self.jobs = IngestJobs(
            open_engine or self._open_like,
            after=self.prune_thumbnails,
            thumbnail=lambda asset: self.thumbnails.get(asset, "grid"),
        )
        self._lock = threading.Lock()

    def run(self, work: Callable[[Engine], T]) -> T:
        """``work(engine)`` once the engine is free (503 after ``engine_wait_s``)."""
        return self._with_engine(work, count=True)

    def _with_engine(self, work: Callable[[Engine], T], count: bool = False) -> T:
        if not self._lock.acquire(timeout=self.limits.engine_wait_s):
            raise BusyError("the service is busy; try again in a moment")
        try:
            self.requests += count
            return work(self.engine)
        finally:
            self._lock.release()

    def asset(self, asset_id: int, kind: str | None = None) -> Asset:
        """The indexed asset ``asset_id`` (of ``kind`` when given); NotFoundError otherwise."""
        asset = self.run(lambda engine: engine.asset(asset_id))
        if asset is None:
            raise NotFoundError(f"no asset {asset_id} in the index")
        if kind is not None and asset.kind != kind:
            raise NotFoundError(f"asset {asset_id} is {asset.kind}, not {kind}")
        return asset

    def prune_thumbnails(self) -> int:
        """Remove the thumbnails of assets gone from the index (not counted as a request)."""
        return self.thumbnails.prune(lambda ids: self._with_engine(lambda engine: engine.existing_assets(ids)))

    def health(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "home": str(self.home),
            "url": self.url,
            "requests": self.requests,
            "version": mmsearch.__version__,
        }

    def _open_like(self) -> Engine:
        """Another engine on the same home and database, for an ingest job."""
        from mmsearch.engine import Engine

        settings = dataclasses.asdict(self.engine.settings)
        return Engine.open(settings.pop("home"), **settings)
