"""Every import in the ```python blocks of README.md and docs/*.md names something that exists (the examples
follow the code when modules move)."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
PAGES = [CHECKOUT / "README.md", *sorted((CHECKOUT / "docs").glob("*.md"))]


def documented_imports() -> list[tuple[str, str, str]]:
    """(page, module, name) of every ``from mmsearch... import name`` in the pages' python blocks."""
    found = []
    for page in PAGES:
        for block in BLOCK.findall(page.read_text(encoding="utf-8")):
            for node in ast.walk(ast.parse(block)):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mmsearch"):
                    found.extend((page.name, node.module or "", alias.name) for alias in node.names)
    return found


def test_the_documented_imports_resolve() -> None:
    imports = documented_imports()
    assert ("service-and-api.md", "mmsearch", "Filters") in imports  # the extraction finds the API example
    missing = []
    for page, module, name in imports:
        try:
            getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            missing.append(f"{page}: from {module} import {name} ({exc})")
    assert not missing, missing
