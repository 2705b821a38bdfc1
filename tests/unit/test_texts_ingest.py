"""Captions and transcripts through ingest and search, with the fake encoder and a fake speech-to-text."""

from __future__ import annotations

import json
import os
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmsearch import Engine
from mmsearch.audio.transcribe import Transcript
from mmsearch.errors import UnreadableMediaError
from mmsearch.store.records import SCORE_BOUND  # stored vectors are float16: a self-match scores 1 +- 2^-11
from mmsearch.textitems import Segment
from tests.conftest import make_image


class FakeTranscriber:
    """Speech-to-text stand-in: the 'speech' of a file is its name's words, one segment per word pair."""

    name = "fake"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def transcribe(self, path: str) -> Transcript:
        self.calls.append(path)
        stem = Path(path).stem
        if stem.startswith("silent"):
            raise UnreadableMediaError("no speech found")
        words = stem.split("_")
        segments = [Segment(2.0 * i, 2.0 * i + 2.0, " ".join(words[i : i + 2])) for i in range(0, len(words), 2)]
        return Transcript(segments, "en", 2.0 * len(segments))


def write_wav(path: Path, seconds: float = 0.5, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    samples = (rng.standard_normal(int(16000 * seconds)) * 1000).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes(samples.tobytes())
    return path


def bump_mtime(path: Path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def speech() -> FakeTranscriber:
    return FakeTranscriber()


@pytest.fixture
def text_engine(tmp_path: Path, speech: FakeTranscriber):
    with Engine.open(
        tmp_path / "home",
        model="fake:32",
        db_url="sqlite://",
        workers=2,
        batch_size=4,
        transcriber_factory=lambda spec, device: speech,
    ) as engine:
        yield engine


@pytest.fixture
def library(tmp_path: Path) -> Path:
    folder = tmp_path / "library"
    make_image(folder / "dog.jpg", 1)
    (folder / "dog.txt").write_text("a brown dog on the beach\na puppy running in sand\n")
    make_image(folder / "cat.png", 2)
    (folder / "cat.caption").write_text("a grey cat sleeping on a sofa")
    make_image(folder / "plain.jpg", 3)
    write_wav(folder / "talk.wav")
    (folder / "talk.srt").write_text(
        "1\n00:00:01,000 --> 00:00:04,500\nwelcome to the harbour tour today\n\n"
        "2\n00:00:05,000 --> 00:00:09,000\nthe big ships arrive at noon every day\n"
    )
    write_wav(folder / "red_kite_over_green_hills.wav", seed=1)
    return folder


def texts_of(hits) -> list[str]:
    return [hit.text for hit in hits]


def test_sidecar_captions_are_embedded_and_searchable(text_engine: Engine, library: Path) -> None:
    report = text_engine.ingest(library)
    assert report.failed == []
    assert report.texts_added["caption"] == 3
    hits = text_engine.search("a grey cat sleeping on a sofa", kind="caption", k=3, mode="dense")
    assert hits[0].path == str(library / "cat.png")
    assert hits[0].match == "caption" and hits[0].kind == "image"
    assert hits[0].text == "a grey cat sleeping on a sofa"
    assert hits[0].score == pytest.approx(1.0, abs=SCORE_BOUND)
    assert {hit.to_dict()["match"] for hit in hits} == {"caption"}


def test_transcript_segments_carry_times(text_engine: Engine, library: Path, speech: FakeTranscriber) -> None:
    text_engine.ingest(library)
    hits = text_engine.search("the big ships arrive at noon every day", kind="transcript", k=2)
    best = hits[0]
    assert best.path == str(library / "talk.wav") and best.kind == "audio" and best.match == "transcript"
    assert (best.start, best.end) == (5.0, 9.0)
    assert best.text == "the big ships arrive at noon every day"
    assert speech.calls == [str(library / "red_kite_over_green_hills.wav")]  # the .srt file spared talk.wav


def test_speech_to_text_when_there_is_no_sidecar(text_engine: Engine, library: Path) -> None:
    report = text_engine.ingest(library)
    assert report.transcribed == 1
    hits = text_engine.search("red kite over green hills", kind="audio", k=5)
    paths = [hit.path for hit in hits]
    assert paths[0] == str(library / "red_kite_over_green_hills.wav")
    assert len(paths) == len(set(paths)) == 2  # one hit per audio file
    assert hits[0].start is not None


def test_audio_kind_returns_k_files_when_one_file_has_many_segments(text_engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "talks"
    long_name = "_".join(f"w{i}" for i in range(40))  # many segments in one file
    write_wav(folder / f"{long_name}.wav")
    write_wav(folder / "another_talk.wav", seed=3)
    write_wav(folder / "third_talk.wav", seed=4)
    text_engine.ingest(folder)
    hits = text_engine.search("w1 w2", kind="audio", k=3)
    assert len(hits) == 3 and len({hit.path for hit in hits}) == 3


def test_image_query_finds_captions(text_engine: Engine, library: Path) -> None:
    text_engine.ingest(library)
    hits = text_engine.search(image=library / "dog.jpg", kind="caption", k=10)
    assert {hit.match for hit in hits} == {"caption"}
    assert sorted(texts_of(hits)) == sorted(
        ["a brown dog on the beach", "a puppy running in sand", "a grey cat sleeping on a sofa"]
    )
    default = text_engine.search(image=library / "dog.jpg", k=10)
    assert {hit.match for hit in default} == {"image"}  # an image query looks for images by default


def test_any_kind_ranks_every_asset_once(text_engine: Engine, library: Path) -> None:
    text_engine.ingest(library)
    hits = text_engine.search("a grey cat sleeping on a sofa", kind="any", k=10)
    paths = [hit.path for hit in hits]
    assert len(paths) == len(set(paths)) == 5
    assert paths[0] == str(library / "cat.png") and hits[0].text == "a grey cat sleeping on a sofa"


def test_editing_a_sidecar_resyncs_only_its_texts(text_engine: Engine, library: Path) -> None:
    text_engine.ingest(library)
    images_encoded = text_engine.encoder.images_encoded
    sidecar = library / "dog.txt"
    sidecar.write_text("a black dog catching a frisbee\n")
    bump_mtime(sidecar)
    report = text_engine.ingest(library)
    assert (report.resynced, report.embedded, report.added, report.updated) == (1, 0, 0, 0)
    assert report.texts_added == {"caption": 1} and report.texts_removed == {"caption": 2}
    assert text_engine.encoder.images_encoded == images_encoded
    captions = texts_of(text_engine.search("dog", kind="caption", k=10))
    assert "a black dog catching a frisbee" in captions
    assert "a brown dog on the beach" not in captions


def test_removing_a_sidecar_removes_its_captions(text_engine: Engine, library: Path) -> None:
    text_engine.ingest(library)
    (library / "cat.caption").unlink()
    report = text_engine.ingest(library)
    assert report.resynced == 1 and report.texts_removed == {"caption": 1}
    assert "a grey cat sleeping on a sofa" not in texts_of(text_engine.search("cat", kind="caption", k=10))
    assert text_engine.search(image=library / "cat.png", k=1)[0].path == str(library / "cat.png")


def test_replacing_a_subtitle_file_resyncs_the_transcript(text_engine: Engine, library: Path) -> None:
    text_engine.ingest(library)
    subtitles = library / "talk.srt"
    subtitles.unlink()
    (library / "talk.vtt").write_text("WEBVTT\n\n00:00:00.000 --> 00:00:03.000\nlighthouse keepers at dusk\n")
    report = text_engine.ingest(library)
    assert report.resynced == 1
    hits = text_engine.search("lighthouse keepers at dusk", kind="transcript", k=1, mode="dense")
    assert hits[0].path == str(library / "talk.wav") and hits[0].score == pytest.approx(1.0, abs=SCORE_BOUND)
    assert "welcome to the harbour tour today" not in texts_of(text_engine.search("x", kind="transcript", k=50))


def test_unchanged_library_is_skipped(text_engine: Engine, library: Path, speech: FakeTranscriber) -> None:
    text_engine.ingest(library)
    report = text_engine.ingest(library)
    assert (report.added, report.updated, report.resynced, report.skipped) == (0, 0, 0, 5)
    assert report.texts_added == {} and len(speech.calls) == 1


def test_deleted_audio_leaves_the_transcript_index(text_engine: Engine, library: Path) -> None:
    text_engine.ingest(library)
    (library / "talk.wav").unlink()
    report = text_engine.ingest(library)
    assert report.removed == 1
    paths = {hit.path for hit in text_engine.search("the big ships", kind="transcript", k=50)}
    assert paths == {str(library / "red_kite_over_green_hills.wav")}
    assert text_engine.status().texts_by_kind["transcript"] == 1  # short segments were merged


def test_silent_and_corrupt_audio_are_per_file_errors(text_engine: Engine, library: Path) -> None:
    write_wav(library / "silent_room.wav", seed=5)
    report = text_engine.ingest(library)
    assert [(Path(f.path).name, f.reason) for f in report.failed] == [("silent_room.wav", "no speech found")]
    assert report.added == 5


def test_long_captions_are_split_to_fit_the_text_encoder(text_engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "long"
    make_image(folder / "x.jpg", 7)
    words = [f"w{i}" for i in range(40)]
    (folder / "x.txt").write_text(" ".join(words))
    text_engine.ingest(folder)
    chunks = texts_of(text_engine.search(image=folder / "x.jpg", kind="caption", k=50))
    context = text_engine.encoder.context_length
    assert len(chunks) == 3 and all(text_engine.encoder.count_tokens(chunk) <= context for chunk in chunks)
    assert sorted(word for chunk in chunks for word in chunk.split()) == sorted(words)


def test_exif_description_becomes_a_caption(text_engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "exif"
    folder.mkdir()
    exif = Image.Exif()
    exif[0x010E] = "sunset over the old harbour"
    Image.new("RGB", (32, 24), (200, 90, 40)).save(folder / "sunset.jpg", exif=exif)
    text_engine.ingest(folder)
    hits = text_engine.search("sunset over the old harbour", kind="caption", k=1, mode="dense")
    assert hits[0].path == str(folder / "sunset.jpg") and hits[0].score == pytest.approx(1.0, abs=SCORE_BOUND)


def test_a_manifest_adds_captions_and_resyncs(text_engine: Engine, library: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "captions.tsv"
    manifest.write_text("image\tcaption\nplain.jpg\ta wooden boat on a lake\nplain.jpg\ta calm lake\n")
    report = text_engine.ingest(library, captions=[manifest])
    assert report.texts_added["caption"] == 5
    assert text_engine.search("a wooden boat on a lake", kind="caption", k=1)[0].path == str(library / "plain.jpg")
    again = text_engine.ingest(library, captions=[manifest])
    assert again.texts_added == {} and again.texts_removed == {}
    manifest.write_text("image\tcaption\nplain.jpg\ta calm lake\nghost.jpg\tnot here\n")
    bump_mtime(manifest)
    changed = text_engine.ingest(library, captions=[manifest])
    assert changed.texts_removed == {"caption": 2} and changed.texts_added == {"caption": 1}
    assert any("ghost.jpg" in warning for warning in changed.warnings)
    assert "a wooden boat on a lake" not in texts_of(text_engine.search("boat", kind="caption", k=10))


def test_new_image_gets_captions_of_an_already_applied_manifest(
    text_engine: Engine, library: Path, tmp_path: Path
) -> None:
    manifest = tmp_path / "captions.jsonl"
    manifest.write_text(json.dumps({"image": "later.jpg", "caption": "a kite festival"}) + "\n")
    text_engine.ingest(library, captions=[manifest])
    make_image(library / "later.jpg", 11)
    text_engine.ingest(library, captions=[manifest])
    assert text_engine.search("a kite festival", kind="caption", k=1)[0].path == str(library / "later.jpg")


def test_status_counts_texts_and_indexes(text_engine: Engine, library: Path) -> None:
    text_engine.ingest(library)
    status = text_engine.status()
    assert status.files_by_kind == {"image": 3, "audio": 2}
    assert status.texts_by_kind == {"caption": 3, "transcript": 3}
    assert set(status.indexes) == {"image", "caption", "transcript"}


def test_indexes_rebuild_from_the_database(tmp_path: Path, library: Path, speech: FakeTranscriber) -> None:
    home = tmp_path / "home"
    options = {"model": "fake:32", "transcriber_factory": lambda spec, device: speech}
    with Engine.open(home, **options) as engine:
        engine.ingest(library)
        before = engine.search("welcome to the harbour", kind="transcript", k=3)
    for index_file in (home / "indexes").glob("*.mmidx"):
        index_file.unlink()
    with Engine.open(home, **options) as engine:
        after = engine.search("welcome to the harbour", kind="transcript", k=3)
        assert [(h.item_id, round(h.score, 5)) for h in after] == [(h.item_id, round(h.score, 5)) for h in before]
        assert engine.reindex()["indexes"]["transcript"]["vectors"] == 3


def test_unknown_kind_is_refused(text_engine: Engine) -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        text_engine.search("x", kind="document")
