"""A home uses the text export the shared cache already holds in place: no second export, and no copy of it in
the home (88 MB for the fixture model); a home's own export is kept (from before, or where the cache could not
be written) and refreshed from the shared one when it is outdated."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmsearch.encoders import onnx_export
from mmsearch.encoders.base import ModelIdentity
from mmsearch.encoders.export_cache import model_folder
from mmsearch.encoders.onnx_text import export_dir, load_text_encoder, query_export_folder, read_manifest
from tests.unit.test_onnx_text import write_export


class TextTowerOnly:
    """An encoder with a text tower to export (a stand-in: exporting it would fail)."""

    text_tower = (object(), object())

    def __init__(self, identity: ModelIdentity) -> None:
        self.identity = identity


def no_export(*args, **kwargs):
    raise AssertionError("the text tower must not be exported again")


def test_a_shared_export_is_used_in_place_not_redone_nor_copied_into_the_home(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("onnx")
    monkeypatch.setenv("MMSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(onnx_export, "missing_runtime_modules", lambda: [])
    identity = ModelIdentity("hf-hub:org/model", None, 16, {"context_length": 8})
    shared = model_folder(identity.fingerprint) / "text"
    write_export(tmp_path / "staging", identity)
    shared.parent.mkdir(parents=True)
    export_dir(tmp_path / "staging", identity.fingerprint).rename(shared)
    encoder = TextTowerOnly(identity)
    monkeypatch.setattr(onnx_export, "export_text_tower", no_export)
    home = tmp_path / "home" / "indexes"
    manifest = onnx_export.ensure_text_export(encoder, home)
    assert manifest == read_manifest(shared)
    assert not export_dir(home, identity.fingerprint).exists()  # no copy in the home
    assert query_export_folder(home, identity.fingerprint) == shared
    loaded = load_text_encoder(home, identity)
    assert loaded is not None and loaded.folder == shared


def test_without_a_shared_export_the_home_keeps_its_own(tmp_path: Path, monkeypatch) -> None:
    """Where the shared cache has no export (it could not be written), the home's own is what queries read."""
    pytest.importorskip("onnx")
    monkeypatch.setenv("MMSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    identity = ModelIdentity("hf-hub:org/model", None, 16, {"context_length": 8})
    home = tmp_path / "home"
    write_export(home, identity)
    assert query_export_folder(home, identity.fingerprint) == export_dir(home, identity.fingerprint)
    loaded = load_text_encoder(home, identity)
    assert loaded is not None and loaded.folder == export_dir(home, identity.fingerprint)


def test_queries_find_the_shared_export_when_the_home_has_none(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("onnx")
    monkeypatch.setenv("MMSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    identity = ModelIdentity("hf-hub:org/model", None, 16, {"context_length": 8})
    write_export(tmp_path / "staging", identity)
    shared = model_folder(identity.fingerprint) / "text"
    shared.parent.mkdir(parents=True)
    export_dir(tmp_path / "staging", identity.fingerprint).rename(shared)
    assert load_text_encoder(tmp_path / "empty-home", identity) is not None
    other = ModelIdentity("hf-hub:org/other", None, 16, {"context_length": 8})
    assert load_text_encoder(tmp_path / "empty-home", other) is None


def test_a_homes_own_unusable_export_is_not_replaced_by_the_shared_one(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("onnx")
    monkeypatch.setenv("MMSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    identity = ModelIdentity("hf-hub:org/model", None, 16, {"context_length": 8})
    write_export(tmp_path / "staging", identity)
    shared = model_folder(identity.fingerprint) / "text"
    shared.parent.mkdir(parents=True)
    export_dir(tmp_path / "staging", identity.fingerprint).rename(shared)
    home = tmp_path / "home"
    write_export(home, identity, {"status": "failed"})
    assert load_text_encoder(home, identity) is None  # the home's record says torch


def test_an_encoder_without_a_text_tower_still_gets_the_shared_export_copied(tmp_path: Path, monkeypatch) -> None:
    """An ONNX-engine encoder (no torch text tower) repairs a home's mismatched export from the shared cache."""
    pytest.importorskip("onnx")
    monkeypatch.setenv("MMSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    identity = ModelIdentity("hf-hub:org/model", None, 16, {"context_length": 8})
    write_export(tmp_path / "staging", identity)
    shared = model_folder(identity.fingerprint) / "text"
    shared.parent.mkdir(parents=True)
    export_dir(tmp_path / "staging", identity.fingerprint).rename(shared)
    home = tmp_path / "home"
    write_export(home, identity, {"fingerprint": "0" * 16})  # a mismatched export of the home's own

    class NoTextTower(TextTowerOnly):
        text_tower = None

    assert onnx_export.ensure_text_export(NoTextTower(identity), home) == read_manifest(shared)
    assert read_manifest(export_dir(home, identity.fingerprint))["fingerprint"] == identity.fingerprint
