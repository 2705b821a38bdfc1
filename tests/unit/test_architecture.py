"""The layout's rules (docs/architecture.md) that code can check: imports point down, a query is parsed once,
values check themselves, the local-or-service choice is made in the library."""

from __future__ import annotations

import ast
import socket
from pathlib import Path

import pytest

import mmsearch
from mmsearch import Engine
from mmsearch.evaluation import EvalQuery
from mmsearch.search.options import SearchOptions, Target
from mmsearch.searcher import open_searcher
from mmsearch.service.client import RemoteSearcher
from mmsearch.service.protocol import ServiceInfo

PACKAGE = Path(mmsearch.__file__).parent


def imported(path: Path) -> set[str]:
    """The mmsearch modules a file imports (anywhere in it, type-checking imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith("mmsearch")}


def imports_of(folder: str) -> dict[str, set[str]]:
    files = [PACKAGE / folder] if folder.endswith(".py") else sorted((PACKAGE / folder).rglob("*.py"))
    return {str(f.relative_to(PACKAGE)): imported(f) for f in files}


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("search", ("mmsearch.ingest", "mmsearch.engine", "mmsearch.cli", "mmsearch.service", "mmsearch.web")),
        ("ingest", ("mmsearch.search", "mmsearch.engine", "mmsearch.cli", "mmsearch.service", "mmsearch.web")),
        ("models.py", ("mmsearch.search", "mmsearch.ingest", "mmsearch.engine")),
        ("index", ("mmsearch.encoders", "mmsearch.search", "mmsearch.ingest", "mmsearch.models")),
        ("store", ("mmsearch.encoders", "mmsearch.index", "mmsearch.search", "mmsearch.ingest", "mmsearch.models")),
        # the web app uses the Engine's public methods, never the layers below it
        (
            "web",
            (
                "mmsearch.ingest",
                "mmsearch.store",
                "mmsearch.index",
                "mmsearch.encoders",
                "mmsearch.models",
                "mmsearch.search.hybrid",
                "mmsearch.search.encode",
                "mmsearch.cli",
            ),
        ),
        ("assets.py", ("mmsearch.store", "mmsearch.engine", "mmsearch.web")),
        ("imageio.py", ("mmsearch.ingest", "mmsearch.search", "mmsearch.models", "mmsearch.engine")),
        ("imageformats.py", ("mmsearch.ingest", "mmsearch.search", "mmsearch.models", "mmsearch.engine")),
        ("kinds.py", ("mmsearch.",)),
        ("identity.py", ("mmsearch.",)),
    ],
)
def test_imports_point_down(layer: str, forbidden: tuple[str, ...]) -> None:
    upward = {
        path: sorted(name for name in names if name.startswith(forbidden)) for path, names in imports_of(layer).items()
    }
    assert {path: names for path, names in upward.items() if names} == {}


def test_a_text_query_is_parsed_once(engine: Engine, photo_dir: Path, monkeypatch) -> None:
    import mmsearch.search.query as query

    engine.ingest(photo_dir)
    parsed: list[str] = []
    original = query.parse_query
    monkeypatch.setattr(query, "parse_query", lambda text: parsed.append(text) or original(text))
    engine.search_many(["a red square", "blue"], k=2)
    assert parsed == ["a red square", "blue"]
    parsed.clear()
    engine.evaluate([EvalQuery("a red square", ("a.jpg",))], modes=("dense", "keyword", "hybrid"), k=2)
    assert parsed == ["a red square"]


def test_options_and_targets_check_themselves() -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        SearchOptions(mode="fuzzy")
    with pytest.raises(ValueError, match="fusion must be one of"):
        SearchOptions(fusion="max")
    with pytest.raises(ValueError, match="cutoff must be one of"):
        SearchOptions(cutoff="elbow")
    with pytest.raises(TypeError, match="unknown search option"):
        SearchOptions.from_keywords({"moed": "dense"})
    with pytest.raises(ValueError, match="k must be at least 1"):
        Target(0)
    with pytest.raises(ValueError, match="kind must be one of"):
        Target(3, "document")


def test_without_a_service_the_searcher_is_the_engine(tmp_path: Path, photo_dir: Path) -> None:
    with Engine.open(tmp_path / "home", model="fake:16", workers=1) as engine:
        engine.ingest(photo_dir)
        expected = engine.search("a red square", k=3)
    with open_searcher(tmp_path / "home") as searcher:
        assert isinstance(searcher, Engine)
        assert searcher.search("a red square", k=3) == expected


def test_a_service_that_does_not_answer_falls_back_to_searching_here(engine: Engine, photo_dir: Path) -> None:
    engine.ingest(photo_dir)
    with socket.socket() as unused:  # a port nothing listens on once closed
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    gone = ServiceInfo(f"http://127.0.0.1:{port}", "t", 1, engine.settings.database_url, str(engine.settings.home))
    opened: list[int] = []
    remote = RemoteSearcher(gone, local=lambda: opened.append(1) or engine)
    assert remote.search("a red square", k=3, mode="dense") == engine.search("a red square", k=3, mode="dense")
    remote.search("blue", k=1)
    assert opened == [1]  # opened once, then reused


def test_reindex_returns_a_typed_report(engine: Engine, photo_dir: Path) -> None:
    engine.ingest(photo_dir)
    report = engine.reindex()
    assert isinstance(report, mmsearch.ReindexReport)
    assert report.vectors == report.indexes["image"].vectors == 6
    assert report.to_dict()["indexes"]["image"] == {"vectors": 6, "path": report.path}


def test_evaluate_checks_its_arguments_before_any_work(engine: Engine) -> None:
    with pytest.raises(ValueError, match="k must be at least 1"):
        engine.evaluate([EvalQuery("a red square", ("a.jpg",))], k=0)  # nothing indexed yet: checked first
    with pytest.raises(ValueError, match="mode must be one of"):
        engine.evaluate([EvalQuery("a red square", ("a.jpg",))], modes=("dense", "fuzzy"))
