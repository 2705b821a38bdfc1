"""``ingest --executor ray`` on a local Ray cluster started once for the module (``ray.init(num_cpus=2)``): the same
database and index contents as the local executor, per-file errors alike, a killed worker's batch retried.

Skipped with the reason where ray is missing (the ``ray`` extra).
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from tests.conftest import DEV, FIXTURE_MODEL, make_image, require_fixture_model

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="ray not installed (pip install 'mmsearch[ray]')")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import the tests package
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture
def library(tmp_path: Path) -> Path:
    folder = tmp_path / "library"
    for seed in range(11):
        make_image(folder / ("sub" if seed % 3 else "") / f"img{seed:02d}.jpg", seed, size=(96, 64))
    (folder / "img01.txt").write_text("a caption beside the picture", encoding="utf-8")
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    return folder


def _contents(engine) -> dict[str, object]:
    """Everything an ingest leaves behind, keyed by path: file rows, texts, and each vector in the index."""
    from mmsearch.kinds import COLLECTIONS

    with engine.store.engine.connect() as connection:
        files = connection.execute(text("SELECT id, path, kind, content_hash, width, height FROM media_files")).all()
        texts = connection.execute(text("SELECT file_id, kind, text FROM text_items")).all()
    path_of = {row.id: row.path for row in files}
    model_id, identity = engine.store.active_model()
    index = engine.models.index_cache(model_id, identity, "image").get()
    vectors = index.vectors(path_of)
    caches = {name: len(engine.models.index_cache(model_id, identity, name).get()) for name in COLLECTIONS}
    return {
        "files": sorted((row.path, row.kind, row.content_hash, row.width, row.height) for row in files),
        "texts": sorted((path_of[row.file_id], row.kind, row.text) for row in texts),
        "vectors": {path_of[key]: vector for key, vector in vectors.items()},
        "index sizes": caches,
    }


def _same(local: dict, remote: dict, tolerance: float = 1e-6) -> None:
    assert remote["files"] == local["files"] and remote["texts"] == local["texts"]
    assert remote["index sizes"] == local["index sizes"]
    assert sorted(remote["vectors"]) == sorted(local["vectors"])
    for path, vector in local["vectors"].items():  # stored at float16: not exactly unit length, so the cosine
        other = remote["vectors"][path]
        cosine = float(np.dot(vector, other) / (np.linalg.norm(vector) * np.linalg.norm(other)))
        assert cosine >= 1 - tolerance, path


def _ingest(home: Path, folder: Path, **options) -> tuple[object, dict]:
    from mmsearch import Engine

    with Engine.open(home, db_url=f"sqlite:///{home}/db.sqlite", batch_size=4, **options) as engine:
        report = engine.ingest(folder)
        return report, _contents(engine)


def test_ray_ingest_leaves_what_the_local_one_does(ray_cluster, tmp_path: Path, library: Path) -> None:
    local_report, local = _ingest(tmp_path / "local", library, model="fake:16")
    remote_report, remote = _ingest(tmp_path / "ray", library, model="fake:16", executor="ray")
    assert (remote_report.added, remote_report.embedded) == (local_report.added, local_report.embedded) == (11, 11)
    assert (
        [f.path for f in remote_report.failed] == [f.path for f in local_report.failed] == [str(library / "broken.jpg")]
    )
    _same(local, remote)

    # Incremental sync is the local one: a deleted, a changed and an unchanged file.
    (library / "img00.jpg").unlink()
    make_image(library / "sub" / "img01.jpg", 99, size=(96, 64))
    make_image(library / "new.png", 42)
    local_report, local = _ingest(tmp_path / "local", library)
    remote_report, remote = _ingest(tmp_path / "ray", library, executor="ray")
    assert (remote_report.removed, remote_report.embedded) == (local_report.removed, local_report.embedded) == (1, 2)
    _same(local, remote)


class _DiesOnce:
    """The fake encoder, except that the first batch encoded in a process other than the driver kills it."""

    def __init__(self, marker: str, driver_pid: int) -> None:
        from mmsearch.encoders.fake import FakeEncoder

        self._inner, self._marker, self._driver_pid = FakeEncoder(16), marker, driver_pid
        self.identity = self._inner.identity

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    def encode_prepared(self, prepared):
        if os.getpid() != self._driver_pid and not os.path.exists(self._marker):
            Path(self._marker).touch()
            os._exit(1)  # the worker dies mid-batch
        return self._inner.encode_prepared(prepared)


def _dies_once(marker: str, driver_pid: int, model: str, device: str) -> _DiesOnce:
    return _DiesOnce(marker, driver_pid)


def test_a_killed_workers_batch_is_retried_not_lost_or_duplicated(ray_cluster, tmp_path: Path, library: Path) -> None:
    from mmsearch import Engine

    _, local = _ingest(tmp_path / "local", library, model="fake:16")
    marker = tmp_path / "killed"
    recipe = functools.partial(_dies_once, str(marker), os.getpid())
    home = tmp_path / "ray"
    with Engine.open(
        home, db_url=f"sqlite:///{home}/db.sqlite", batch_size=4, executor="ray", encoder_factory=recipe
    ) as engine:
        report = engine.ingest(library)
        assert marker.exists()  # a worker was killed
        assert (report.added, report.embedded, len(report.failed)) == (11, 11, 1)
        _same(local, _contents(engine))


def test_ray_ingest_with_the_fixture_model(ray_cluster, tmp_path: Path) -> None:
    require_fixture_model()
    folder = tmp_path / "dev"
    folder.mkdir()
    for source in sorted((DEV / "images").iterdir())[:4]:
        shutil.copy(source, folder / source.name)
    _, local = _ingest(tmp_path / "local", folder, model=FIXTURE_MODEL, device="cpu", precision="fp32")
    report, remote = _ingest(
        tmp_path / "ray", folder, model=FIXTURE_MODEL, device="cpu", precision="fp32", executor="ray"
    )
    assert (report.embedded, report.failed) == (4, [])
    _same(local, remote, tolerance=1e-5)


def test_ingest_executor_ray_from_the_cli(ray_cluster, tmp_path: Path, library: Path) -> None:
    import json

    from click.testing import CliRunner

    from mmsearch.cli import cli

    home = tmp_path / "home"
    args = ["--home", str(home), "--model", "fake:16", "ingest", str(library), "--executor", "ray", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 3, result.output  # completed, with the library's one broken file failed
    report = json.loads(result.output[result.output.index("{") :])
    assert (report["added"], report["embedded"], len(report["failed"])) == (11, 11, 1)
    _, local = _ingest(tmp_path / "local", library, model="fake:16")
    from mmsearch import Engine

    with Engine.open(home) as engine:
        _same(local, _contents(engine))
