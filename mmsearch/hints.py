"""Install hints that are true for the way this copy of mmsearch was installed.

mmsearch is installed from a checkout (``pip install '/path/to/checkout[clip]'``), not from a package index, so a
hint naming ``mmsearch[clip]`` alone would send the user to a package that is not there. The installer records
where a package came from (PEP 610's ``direct_url.json``): a local folder means the checkout's path is the thing to
name; no record means an index, where the name is right; anything else (a wheel file, a VCS URL) gets both forms.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse


def install_hint(extra: str) -> str:
    """The pip command that adds the optional dependencies ``extra`` (e.g. ``clip``, ``audio``) to this install."""
    checkout = install_source()
    if checkout == "index":
        return f"pip install 'mmsearch[{extra}]'"
    if checkout is not None:
        return f"pip install '{checkout}[{extra}]'"
    return f"pip install '/path/to/mmsearch-checkout[{extra}]' (or 'mmsearch[{extra}]' from a package index)"


def install_source() -> str | None:
    """The checkout folder mmsearch was installed from, ``"index"`` when it came from a package index, or None when
    that cannot be told (installed from a wheel file or a URL)."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file():  # an editable install, or the source tree itself
        return str(root)
    try:
        dist = metadata.distribution("mmsearch")
    except metadata.PackageNotFoundError:
        return None
    record = dist.read_text("direct_url.json")
    if record is None:
        return "index"
    return checkout_of(record)


def checkout_of(direct_url: str) -> str | None:
    """The local folder named by a PEP 610 ``direct_url.json`` record, when it names one (not a file or a URL)."""
    try:
        info = json.loads(direct_url)
    except json.JSONDecodeError:
        return None
    url = urlparse(str(info.get("url", "")))
    if url.scheme != "file" or "dir_info" not in info:
        return None
    return unquote(url.path)
