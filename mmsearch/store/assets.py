"""Indexed files as :class:`mmsearch.assets.Asset` values, read from the store."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmsearch.assets import Asset, AssetText

if TYPE_CHECKING:
    from mmsearch.store.repository import MetadataStore


def asset_by_id(store: MetadataStore, asset_id: int) -> Asset | None:
    """An indexed file by its id, with its captions and transcript segments; None when there is no such asset."""
    file = store.get_files([asset_id]).get(asset_id)
    if file is None:
        return None
    texts = [
        AssetText(t.id, t.kind, t.source, t.text, t.start, t.end)
        for t in store.texts_of_files([asset_id]).get(asset_id, [])
    ]
    return Asset(file.id, file.path, file.kind, file.width, file.height, file.size, file.mtime_ns, file.taken_at, texts)


def assets_in(store: MetadataStore, root: str) -> list[Asset]:
    """The indexed files under the resolved folder ``root`` (without their texts)."""
    return [
        Asset(k.id, k.path, k.kind, k.width, k.height, k.size, k.mtime_ns, k.taken_at)
        for k in store.files_under(root).values()
    ]
