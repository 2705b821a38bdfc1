"""``status``: what is indexed, with which model, and how big, without loading a model or FAISS."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from mmsearch.config import Settings
from mmsearch.encoders.base import ModelIdentity
from mmsearch.errors import IndexCorruptError
from mmsearch.index.faiss_index import read_header
from mmsearch.store.repository import MetadataStore


@dataclass(frozen=True)
class StatusReport:
    home: str
    database: str
    database_bytes: int | None
    model: dict[str, Any] | None
    files_by_kind: dict[str, int]
    texts_by_kind: dict[str, int]
    files_bytes: int
    vectors: int
    generation: int
    index: dict[str, Any] | None
    """The image index (kept for scripts written against earlier versions); all of them are in ``indexes``."""
    indexes: dict[str, dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_status(
    settings: Settings, store: MetadataStore, identity: ModelIdentity | None, paths: dict[str, Path]
) -> StatusReport:
    """Collect the facts ``mmsearch status`` shows; ``paths`` are the index files by collection."""
    counts = store.counts()
    generation = store.generation()
    indexes = {
        collection: facts
        for collection, path in paths.items()
        if (facts := _index_facts(path, store.generation(collection))) is not None
    }
    url = make_url(settings.database_url)
    database_bytes = None
    if url.get_backend_name() == "sqlite" and url.database and Path(url.database).is_file():
        database_bytes = sum(p.stat().st_size for p in (Path(url.database), Path(url.database + "-wal")) if p.is_file())
    model = None
    if identity is not None:
        model = {**identity.to_dict(), "spec": identity.spec, "fingerprint": identity.fingerprint}
    return StatusReport(
        home=str(settings.home),
        database=url.render_as_string(hide_password=True),
        database_bytes=database_bytes,
        model=model,
        files_by_kind=counts["files_by_kind"],
        texts_by_kind=counts["texts_by_kind"],
        files_bytes=counts["files_bytes"],
        vectors=counts["vectors"],
        generation=generation,
        index=indexes.get("image"),
        indexes=indexes,
    )


def _index_facts(path: Path | None, generation: int) -> dict[str, Any] | None:
    if path is None:
        return None
    facts: dict[str, Any] = {"path": str(path), "exists": path.is_file()}
    if not path.is_file():
        facts["state"] = "missing (rebuilt from the database on next query)"
        return facts
    try:
        header = read_header(path)
    except IndexCorruptError as exc:
        facts["state"] = f"unreadable ({exc}); run `mmsearch reindex`"
        return facts
    facts.update(
        kind=header.get("kind"),
        vectors=header.get("count"),
        bytes=path.stat().st_size,
        state="up to date" if header.get("generation") == generation else "stale (rebuilt on next query)",
    )
    return facts
