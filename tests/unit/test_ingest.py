"""Ingest with the fake encoder: formats, incremental runs, bad files, crash recovery."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmsearch import Engine
from mmsearch.encoders.fake import FakeEncoder
from mmsearch.errors import EmptyFolderError, FolderNotFoundError, UnreadableMediaError
from mmsearch.imageio import load_image
from mmsearch.ingest.runner import read_probe
from mmsearch.store.records import SCORE_BOUND  # stored vectors are float16: a self-match scores 1 +- 2^-11
from tests.conftest import make_image


def paths_of(engine: Engine) -> set[str]:
    hits = engine.search(image=next(iter(engine.store.files_under("/").values())).path, k=1000)
    return {Path(hit.path).name for hit in hits}


def test_ingests_every_supported_format_recursively(engine: Engine, photo_dir: Path) -> None:
    report = engine.ingest(photo_dir)
    assert (report.added, report.updated, report.removed, report.skipped) == (6, 0, 0, 0)
    assert report.failed == []
    assert report.embedded == 6
    assert paths_of(engine) == {"a.jpg", "b.png", "c.webp", "d.bmp", "e.tiff", "f.gif"}
    assert report.elapsed_s > 0 and report.images_per_s > 0


def test_unchanged_folder_is_skipped_without_loading_the_model(tmp_path: Path, photo_dir: Path) -> None:
    home = tmp_path / "home"
    with Engine.open(home, model="fake:16") as first:
        first.ingest(photo_dir)
    with Engine.open(home) as second:
        report = second.ingest(photo_dir)
        assert (report.added, report.updated, report.removed, report.skipped) == (0, 0, 0, 6)
        assert second.models.loaded_encoder is None  # nothing to embed, so no model was loaded


def test_touched_but_identical_files_are_not_re_embedded(engine: Engine, photo_dir: Path) -> None:
    engine.ingest(photo_dir)
    encoded = engine.encoder.images_encoded
    os.utime(photo_dir / "a.jpg", ns=(1, 1))
    report = engine.ingest(photo_dir)
    assert report.skipped == 6 and report.updated == 0
    assert engine.encoder.images_encoded == encoded
    assert engine.store.files_under(str(photo_dir))[str(photo_dir / "a.jpg")].mtime_ns == 1


def test_changed_files_are_re_embedded(engine: Engine, photo_dir: Path) -> None:
    engine.ingest(photo_dir)
    target = photo_dir / "b.png"
    before = engine.search(image=target, k=1)[0]
    make_image(target, seed=99, size=(30, 30))
    report = engine.ingest(photo_dir)
    assert (report.updated, report.embedded, report.skipped) == (1, 1, 5)
    after = engine.search(image=target, k=1)[0]
    assert after.id == before.id and after.path == before.path
    assert after.score == pytest.approx(1.0, abs=SCORE_BOUND)
    assert (after.width, after.height) == (30, 30)


def test_deleted_files_leave_database_and_index(engine: Engine, photo_dir: Path) -> None:
    engine.ingest(photo_dir)
    (photo_dir / "c.webp").unlink()
    shutil.rmtree(photo_dir / "sub")
    report = engine.ingest(photo_dir)
    assert report.removed == 2
    assert paths_of(engine) == {"a.jpg", "b.png", "d.bmp", "e.tiff"}
    assert engine.status().vectors == 4  # unused vectors are collected


def test_renamed_and_duplicate_files_reuse_stored_vectors(engine: Engine, photo_dir: Path) -> None:
    engine.ingest(photo_dir)
    encoded = engine.encoder.images_encoded
    (photo_dir / "a.jpg").rename(photo_dir / "renamed.jpg")
    shutil.copy(photo_dir / "b.png", photo_dir / "copy-of-b.png")
    report = engine.ingest(photo_dir)
    assert (report.added, report.removed, report.reused, report.embedded) == (2, 1, 2, 0)
    assert engine.encoder.images_encoded == encoded
    hits = engine.search(image=photo_dir / "b.png", k=2)
    assert {Path(h.path).name for h in hits} == {"b.png", "copy-of-b.png"}
    assert all(h.score == pytest.approx(1.0, abs=SCORE_BOUND) for h in hits)


def test_bad_files_are_reported_one_by_one_and_never_stop_the_run(tmp_path: Path, photo_dir: Path) -> None:
    good = make_image(photo_dir / "fine.jpg", seed=5, size=(120, 90))
    (photo_dir / "truncated.jpg").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (photo_dir / "text.png").write_text("this is not a png")
    (photo_dir / "empty.gif").write_bytes(b"")
    make_image(photo_dir / "bomb.png", seed=6, size=(300, 200))
    with Engine.open(tmp_path / "h", model="fake:16", max_image_pixels=50_000) as engine:
        report = engine.ingest(photo_dir)
    reasons = {Path(f.path).name: f.reason for f in report.failed}
    assert set(reasons) == {"truncated.jpg", "text.png", "empty.gif", "bomb.png"}
    assert "over the limit of 50,000 (decompression bomb guard)" in reasons["bomb.png"]
    assert "not an image" in reasons["text.png"]
    assert "cannot decode image" in reasons["truncated.jpg"]
    assert report.added == 7  # every good file made it


def test_a_known_file_that_turns_bad_is_removed(engine: Engine, photo_dir: Path) -> None:
    engine.ingest(photo_dir)
    (photo_dir / "a.jpg").write_bytes(b"now garbage")
    report = engine.ingest(photo_dir)
    assert [Path(f.path).name for f in report.failed] == ["a.jpg"]
    assert "a.jpg" not in paths_of(engine)


def test_missing_files_give_a_clean_reason(tmp_path: Path) -> None:
    with pytest.raises(UnreadableMediaError, match="cannot read file"):
        read_probe(str(tmp_path / "gone.jpg"))


class ExplodingEncoder(FakeEncoder):
    """Dies on its n-th batch, as a crash or Ctrl-C would."""

    def __init__(self, dim: int, fail_on_batch: int) -> None:
        super().__init__(dim)
        self.batches = 0
        self.fail_on_batch = fail_on_batch

    def encode_prepared(self, prepared):
        self.batches += 1
        if self.batches == self.fail_on_batch:
            raise KeyboardInterrupt
        return super().encode_prepared(prepared)


def test_a_crash_loses_at_most_the_batch_in_flight(tmp_path: Path, photo_dir: Path) -> None:
    home = tmp_path / "home"
    crashing = ExplodingEncoder(16, fail_on_batch=2)
    with (
        Engine.open(
            home, model="fake:16", batch_size=2, workers=1, encoder_factory=lambda name, device: crashing
        ) as engine,
        pytest.raises(KeyboardInterrupt),
    ):
        engine.ingest(photo_dir)
    with Engine.open(home, batch_size=2) as engine:
        assert engine.status().files_by_kind == {"image": 2}  # the first batch was committed
        report = engine.ingest(photo_dir)
        assert (report.skipped, report.added) == (2, 4)
        assert engine.encoder.images_encoded == 4
        assert len(paths_of(engine)) == 6


def test_index_file_is_a_rebuildable_cache(tmp_path: Path, photo_dir: Path) -> None:
    home = tmp_path / "home"
    with Engine.open(home, model="fake:16") as engine:
        engine.ingest(photo_dir)
        index_file = Path(engine.status().index["path"])
        stale = index_file.read_bytes()
        (photo_dir / "a.jpg").unlink()
        engine.ingest(photo_dir)
    index_file.write_bytes(stale)  # an old index: must be noticed and rebuilt
    with Engine.open(home) as engine:
        assert engine.status().index["state"].startswith("stale")
        assert len(paths_of(engine)) == 5
        assert engine.status().index["state"] == "up to date"
    index_file.unlink()
    with Engine.open(home) as engine:
        assert len(paths_of(engine)) == 5
    assert index_file.is_file()
    index_file.write_bytes(b"garbage")
    with Engine.open(home) as engine:
        assert "unreadable" in engine.status().index["state"]
        result = engine.reindex()
        assert result["vectors"] == 5
        assert engine.status().index["state"] == "up to date"


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    Image.new("RGB", (40, 20), (255, 0, 0)).save(path, exif=exif)
    assert load_image(str(path), 10**6).size == (20, 40)


def test_gif_uses_its_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    decoded = np.asarray(load_image(str(path), 10**6))
    assert decoded[0, 0].tolist() == [255, 0, 0]


def test_folder_errors(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(FolderNotFoundError, match="folder not found"):
        engine.ingest(tmp_path / "nope")
    (tmp_path / "file.jpg").write_bytes(b"x")
    with pytest.raises(FolderNotFoundError, match="not a folder"):
        engine.ingest(tmp_path / "file.jpg")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("hi")
    with pytest.raises(EmptyFolderError, match="no supported media"):
        engine.ingest(tmp_path / "empty")


def test_emptied_folder_removes_what_was_indexed(engine: Engine, photo_dir: Path) -> None:
    engine.ingest(photo_dir)
    for path in list(photo_dir.rglob("*")):
        if path.is_file():
            path.unlink()
    report = engine.ingest(photo_dir)
    assert report.removed == 6
    assert engine.status().files_by_kind == {}


def test_progress_reports_each_phase(engine: Engine, photo_dir: Path) -> None:
    events: list[tuple[str, int, int]] = []
    engine.ingest(photo_dir, progress=lambda phase, done, total: events.append((phase, done, total)))
    assert events[-1] == ("embedding", 6, 6)
    assert not [event for event in events if event[0] == "hashing"]  # nothing to reuse yet: no probe pass

    events.clear()
    changed, kept = photo_dir / "a.jpg", photo_dir / "b.png"
    make_image(changed, seed=99)
    (photo_dir / "copy.png").write_bytes(kept.read_bytes())  # known content: its vector is reused, not embedded
    report = engine.ingest(photo_dir, progress=lambda phase, done, total: events.append((phase, done, total)))
    assert ("hashing", 2, 2) in events and ("embedding", 1, 1) in events
    assert (report.embedded, report.reused) == (1, 1)


def test_an_empty_saved_index_is_loaded_not_rebuilt(tmp_path: Path, photo_dir: Path) -> None:
    home = tmp_path / "home"
    with Engine.open(home, model="fake:16") as engine:
        engine.ingest(photo_dir)
        shutil.rmtree(photo_dir)
        photo_dir.mkdir()
        assert engine.ingest(photo_dir).removed == 6
        index_file = Path(engine.status().index["path"])
    written = index_file.stat().st_mtime_ns
    with Engine.open(home) as engine:
        assert engine.search("anything") == []
    assert index_file.stat().st_mtime_ns == written  # read back as is, no rebuild and rewrite


def test_several_batches_encoding_at_once_give_the_same_index(tmp_path: Path, photo_dir: Path) -> None:
    """Batches encoded concurrently are committed in order: ids, vectors and results equal one-at-a-time's."""
    results = []
    for streams in (1, 3):
        with Engine.open(tmp_path / f"s{streams}", model="fake:16", batch_size=2, encode_streams=streams) as engine:
            report = engine.ingest(photo_dir)
            assert (report.embedded, report.batch_size) == (6, 2)
            hits = engine.search("a red square", k=6, mode="dense")
            results.append([(hit.id, hit.path, round(hit.score, 6)) for hit in hits])
    assert results[0] == results[1]
