"""Thumbnails of indexed images, made lazily with Pillow and cached under the home.

Two sizes: ``grid`` (results grid) and ``preview`` (lightbox). A thumbnail lives in
``<home>/thumbnails/<asset id>/<size>-<key>.jpg`` where the key hashes the file's path, size and modification
time, so a changed file gets a new one (the old one is deleted when the new one is made), and
:meth:`Thumbnails.prune` removes the folders of assets that left the index.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from mmsearch.assets import Asset
from mmsearch.errors import UnreadableMediaError
from mmsearch.web.media import open_regular

SIZES = {"grid": 320, "preview": 1280}
"""The longest side of each size, in pixels."""
FOLDER = "thumbnails"


class Thumbnails:
    def __init__(self, home: Path, max_pixels: int) -> None:
        self.root = Path(home) / FOLDER
        self.max_pixels = max_pixels

    def path_for(self, asset: Asset, size: str) -> Path:
        key = hashlib.blake2b(f"{asset.path}\0{asset.size}\0{asset.mtime_ns}".encode(), digest_size=8).hexdigest()
        return self.root / str(asset.id) / f"{size}-{key}.jpg"

    def get(self, asset: Asset, size: str) -> Path:
        """The thumbnail of an image asset, made now if it is missing or its file changed."""
        target = self.path_for(asset, size)
        if target.is_file():
            return target
        picture = _decode(asset.path, SIZES[size], self.max_pixels)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".thumb-", suffix=".jpg")
        try:
            with os.fdopen(handle, "wb") as out:
                picture.save(out, format="JPEG", quality=85, optimize=True)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        for stale in target.parent.glob(f"{size}-*.jpg"):
            if stale != target:
                stale.unlink(missing_ok=True)
        return target

    def prune(self, existing: Callable[[list[int]], Iterable[int]]) -> int:
        """Remove the thumbnails of assets no longer indexed (``existing(ids)`` says which still are)."""
        if not self.root.is_dir():
            return 0
        folders = {int(entry.name): entry for entry in self.root.iterdir() if entry.name.isdigit()}
        kept = set(existing(sorted(folders)))
        gone = [folder for asset_id, folder in folders.items() if asset_id not in kept]
        for folder in gone:
            shutil.rmtree(folder, ignore_errors=True)
        return len(gone)


def _decode(path: str, side: int, max_pixels: int) -> Image.Image:
    """The picture at ``path`` scaled to fit ``side`` x ``side``, EXIF orientation applied, RGB."""
    try:
        with open_regular(path) as handle, Image.open(handle) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise UnreadableMediaError(f"image is {width}x{height} pixels, over the limit of {max_pixels:,}")
            image.draft("RGB", (side, side))  # JPEG: decode at a reduced scale inside libjpeg
            image.thumbnail((side * 2, side * 2), reducing_gap=2.0)
            oriented = ImageOps.exif_transpose(image) or image
            oriented.thumbnail((side, side))
            return oriented.convert("RGB")
    except UnreadableMediaError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UnreadableMediaError(f"cannot make a thumbnail: {exc}") from exc
