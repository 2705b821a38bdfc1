"""Which image suffixes mmsearch reads: Pillow's own formats, AVIF when this Pillow has it, HEIC/HEIF through
pillow-heif (the optional ``heif`` extra) when it is installed."""

from __future__ import annotations

import functools

from mmsearch.hints import install_hint

BASE_IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
HEIF_EXTENSIONS = frozenset({".heic", ".heif", ".hif"})
AVIF_EXTENSIONS = frozenset({".avif"})


@functools.cache
def heif_available() -> bool:
    """Whether pillow-heif is installed; its Pillow opener is registered on the first call that finds it."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return False
    register_heif_opener()
    return True


@functools.cache
def avif_available() -> bool:
    """Whether this Pillow was built with AVIF support (Pillow 11.2+ wheels are)."""
    from PIL import features

    return "avif" in features.modules and bool(features.check_module("avif"))


def image_extensions() -> frozenset[str]:
    """Every image suffix (lower case, with the dot) that can be decoded in this environment."""
    extensions = set(BASE_IMAGE_EXTENSIONS)
    if avif_available():
        extensions |= AVIF_EXTENSIONS
    if heif_available():
        extensions |= HEIF_EXTENSIONS
    return frozenset(extensions)


def missing_plugin_hint(extension: str) -> str | None:
    """The install hint for an image suffix that an optional package would make readable; else None."""
    if extension in HEIF_EXTENSIONS and not heif_available():
        return f"HEIC/HEIF images need pillow-heif: {install_hint('heif')}"
    return None
