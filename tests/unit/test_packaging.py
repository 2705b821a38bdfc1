"""Every package of the source tree is listed in pyproject.toml, and the web app's static files ship with it."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_is_in_the_wheel() -> None:
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setup["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "mmsearch").rglob("__init__.py")
    }
    assert found <= listed, f"missing from [tool.setuptools] packages: {sorted(found - listed)}"
    static = setup["package-data"]["mmsearch.web"]
    assert static == ["static/*"]
    assert {p.name for p in (ROOT / "mmsearch" / "web" / "static").iterdir()} == {"index.html", "app.js", "style.css"}
