"""The settings that pick the cluster parts (vector store, keyword engine, executor): precedence and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmsearch.config import resolve_settings
from mmsearch.errors import ConfigError
from mmsearch.store.keyword_folder import swap_in as _swap_in


def test_vector_url_keyword_engine_and_executor_follow_the_usual_precedence(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('vector_url = "/from/config.db"\nkeyword-engine = "database"\n')
    env = {"MMSEARCH_VECTOR_URL": "http://milvus:19530", "MMSEARCH_EXECUTOR": "ray"}
    settings = resolve_settings(tmp_path, environ=env)
    assert settings.vector_url == "http://milvus:19530"
    assert (settings.keyword_engine, settings.executor) == ("database", "ray")
    settings = resolve_settings(tmp_path, environ=env, vector_url="/flag.db", ray_address="auto", executor="local")
    assert (settings.vector_url, settings.ray_address, settings.executor) == ("/flag.db", "auto", "local")
    defaults = resolve_settings(tmp_path / "elsewhere", environ={})
    assert (defaults.vector_url, defaults.keyword_engine, defaults.executor) == (None, "auto", "local")


@pytest.mark.parametrize(("key", "value"), [("keyword_engine", "lucene"), ("executor", "spark")])
def test_unknown_choices_are_refused(tmp_path: Path, key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key):
        resolve_settings(tmp_path, environ={}, **{key: value})


def test_a_keyword_index_swap_replaces_the_old_folder_whole(tmp_path: Path) -> None:
    target = tmp_path / "keyword.tantivy"
    for generation in (1, 2):
        built = tmp_path / f"build-{generation}"
        built.mkdir()
        (built / "stamp.json").write_text(str(generation))
        _swap_in(built, target)
        assert (target / "stamp.json").read_text() == str(generation) and not built.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keyword.tantivy"]
