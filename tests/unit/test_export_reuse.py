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

IDENTITY = ModelIdentity("hf-hub:org/model", None, 16, {"context_length": 8})


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's shared cache of its own."""
    monkeypatch.setenv("MMSEARCH_CACHE_DIR", str(tmp_path / "cache"))


class TextTowerOnly:
    """An encoder with a text tower to export (a stand-in: exporting it would fail)."""

    text_tower = (object(), object())

    def __init__(self, identity: ModelIdentity) -> None:
        self.identity = identity


def no_export(*args, **kwargs):
    raise AssertionError("the text tower must not be exported again")


def test_a_shared_export_is_used_in_place_not_redone_nor_copied_into_the_home(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("onnx")
    monkeypatch.setattr(onnx_export, "missing_runtime_modules", lambda: [])
    identity = IDENTITY
    shared = shared_export(tmp_path, identity)
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
    identity = IDENTITY
    home = tmp_path / "home"
    write_export(home, identity)
    assert query_export_folder(home, identity.fingerprint) == export_dir(home, identity.fingerprint)
    loaded = load_text_encoder(home, identity)
    assert loaded is not None and loaded.folder == export_dir(home, identity.fingerprint)


def test_queries_find_the_shared_export_when_the_home_has_none(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("onnx")
    identity = IDENTITY
    write_export(tmp_path / "staging", identity)
    shared = model_folder(identity.fingerprint) / "text"
    shared.parent.mkdir(parents=True)
    export_dir(tmp_path / "staging", identity.fingerprint).rename(shared)
    assert load_text_encoder(tmp_path / "empty-home", identity) is not None
    other = ModelIdentity("hf-hub:org/other", None, 16, {"context_length": 8})
    assert load_text_encoder(tmp_path / "empty-home", other) is None


def test_a_homes_own_unusable_export_is_not_replaced_by_the_shared_one(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("onnx")
    identity = IDENTITY
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
    identity = IDENTITY
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


def shared_export(tmp_path: Path, identity: ModelIdentity) -> Path:
    write_export(tmp_path / "staging", identity)
    shared = model_folder(identity.fingerprint) / "text"
    shared.parent.mkdir(parents=True)
    export_dir(tmp_path / "staging", identity.fingerprint).rename(shared)
    return shared


def refreshed_home(tmp_path: Path, identity: ModelIdentity) -> Path:
    """A home whose own export is outdated (another fingerprint): ensure_text_export refreshes it from the cache."""
    home = tmp_path / "home"
    write_export(home, identity, {"fingerprint": "0" * 16})
    return home


def test_a_refreshed_home_export_links_the_shared_files_not_copies(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("onnx")
    identity = IDENTITY
    shared = shared_export(tmp_path, identity)
    home = refreshed_home(tmp_path, identity)
    assert onnx_export.ensure_text_export(TextTowerOnly(identity), home) == read_manifest(shared)
    published = export_dir(home, identity.fingerprint)
    for path in (p for p in shared.iterdir() if p.is_file()):
        assert (published / path.name).samefile(path)


def test_where_links_fail_the_shared_files_are_copied(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("onnx")
    identity = IDENTITY
    shared = shared_export(tmp_path, identity)
    home = refreshed_home(tmp_path, identity)

    def no_links(source: object, target: object) -> None:
        raise OSError("cross-device link")

    monkeypatch.setattr(onnx_export.os, "link", no_links)
    assert onnx_export.ensure_text_export(TextTowerOnly(identity), home) == read_manifest(shared)
    published = export_dir(home, identity.fingerprint)
    for path in (p for p in shared.iterdir() if p.is_file()):
        assert not (published / path.name).samefile(path)
        assert (published / path.name).read_bytes() == path.read_bytes()
    assert load_text_encoder(home, identity) is not None


def test_a_shared_manifest_of_another_model_or_format_means_export_again(tmp_path: Path, monkeypatch) -> None:
    """A text or image manifest in the shared cache that does not settle the tower for this model (rewritten with
    another fingerprint, another format, unreadable, failed with other package versions) counts as no export, so
    ``ensure_exports`` exports that tower again instead of leaving the model on torch for good; a verified export
    and a failure recorded with today's versions are kept."""
    pytest.importorskip("onnx")
    import json

    from mmsearch.encoders.image_export import export_status

    identity = IDENTITY
    shared = shared_export(tmp_path, identity)
    verified = read_manifest(shared)
    assert verified is not None and export_status(identity) == {"image": None, "text": verified}
    path = shared / "manifest.json"
    failed = {**verified, "status": "failed", "versions": onnx_export._versions()}
    for manifest, settled in [
        ({**verified, "fingerprint": "0" * 16}, False),
        ({**verified, "format": -1}, False),
        ({**failed, "versions": {"onnx": "0.0"}}, False),
        ({**failed, "fingerprint": "0" * 16}, False),
        (failed, True),
    ]:
        path.write_text(json.dumps(manifest))
        assert export_status(identity)["text"] == (manifest if settled else None), manifest
    path.write_text("{not json")
    assert export_status(identity)["text"] is None
    image = model_folder(identity.fingerprint) / "image"
    image.mkdir()
    (image / "manifest.json").write_text(json.dumps({**failed, "fingerprint": "1" * 16}))
    assert export_status(identity)["image"] is None
