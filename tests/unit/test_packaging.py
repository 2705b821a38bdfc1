"""The web app's page ships in the package: setup.py finds every package and names the static folder (no
``__init__.py``); its files are that package's data."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def test_the_page_is_package_data() -> None:
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setup["package-data"]["mmsearch.web.static"] == ["*"]
    assert '"mmsearch.web.static"' in (ROOT / "setup.py").read_text()  # a package of its own (no __init__.py)
    assert {p.name for p in (ROOT / "mmsearch" / "web" / "static").iterdir()} == {"index.html", "app.js", "style.css"}
