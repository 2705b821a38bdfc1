"""Video ingest on small synthetic videos (PyAV-encoded at test time) with the fake encoder: keyframes and
shots, rotation, subtitle sidecars and streams, no audio, bad files, re-sync, renames; search and storyboard."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av", reason="PyAV not installed (pip install 'mmsearch[audio]')")

from mmsearch.video.extract import extract_keyframes, rotate_for_display  # noqa: E402
from mmsearch.video.speech import ass_dialogue_text, subtitle_stream_segments  # noqa: E402
from tests.videos import SIZE, write_video  # noqa: E402

SRT = (
    "1\n00:00:00,500 --> 00:00:02,600\nthe {\\i1}red{\\i0} scene is here\n\n"
    "2\n00:00:03,200 --> 00:00:05,400\nthe <i>blue</i> scene is here\n"
)


def test_shots_and_keyframes_of_a_video(tmp_path: Path) -> None:
    frames = extract_keyframes(str(write_video(tmp_path / "a.mp4", [3.0, 2.0, 12.0])))
    assert frames.cuts == [3.0, 5.0]
    spans = sorted({(k.shot_start, k.shot_end) for k in frames.keyframes})
    assert spans == [(0.0, 3.0), (3.0, 5.0), (5.0, 17.0)]
    assert len([k for k in frames.keyframes if k.shot_start == 5.0]) >= 2  # a frame every 5 s in the long shot
    assert frames.keyframes[0].image.size == SIZE
    assert not frames.info.has_audio


@pytest.mark.parametrize("rotation", [90, 270])
def test_rotation_is_applied_to_keyframes(tmp_path: Path, rotation: int) -> None:
    frames = extract_keyframes(str(write_video(tmp_path / "r.mp4", [2.0], rotation=rotation)))
    assert frames.rotation == rotation
    picture = np.asarray(frames.keyframes[0].image)
    assert picture.shape[:2] == (SIZE[0], SIZE[1])  # portrait: width and height swapped
    assert frames.display_size == (SIZE[1], SIZE[0])
    # The bright corner marker (top-left as coded) ends where the rotation puts it.
    corner = {90: picture[-8:, :8], 270: picture[:8, -8:]}[rotation]
    assert corner.mean() > 200


def test_rotate_for_display_is_counter_clockwise() -> None:
    from PIL import Image

    pixels = np.zeros((2, 3), np.uint8)
    pixels[0, 0] = 255
    turned = np.asarray(rotate_for_display(Image.fromarray(pixels), 90))
    assert turned.tolist() == np.rot90(pixels).tolist()
    assert np.asarray(rotate_for_display(Image.fromarray(pixels), 0)).tolist() == pixels.tolist()


def test_subtitle_stream_is_read_as_timed_text(tmp_path: Path) -> None:
    path = write_video(tmp_path / "s.mkv", [3.0, 3.0], srt=SRT)
    segments = subtitle_stream_segments(str(path))
    assert [(s.start, s.end, s.text) for s in segments] == [
        (0.5, 2.6, "the red scene is here"),
        (3.2, 5.4, "the blue scene is here"),
    ]
    assert subtitle_stream_segments(str(write_video(tmp_path / "plain.mkv", [1.0]))) == []
    assert ass_dialogue_text(b"{\\an8}two\\Nlines") == "two lines"


def _ingest(engine, folder: Path):
    return engine.ingest(folder)


def test_ingest_search_and_storyboard(engine, tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    write_video(folder / "clip.mkv", [3.0, 3.0], srt=SRT)
    write_video(folder / "silent.mp4", [4.0])
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    (folder / "empty.mov").write_bytes(b"")
    report = engine.ingest(folder)
    assert report.videos == 2 and report.added == 2 and report.video_s == pytest.approx(10.0, abs=0.2)
    assert {Path(f.path).name for f in report.failed} == {"broken.mp4", "empty.mov"}
    assert report.texts_added == {"frame": report.keyframes, "transcript": 2}

    hits = engine.search("the blue scene is here", kind="video", k=5, weights={"frame": 0})
    assert hits[0].path.endswith("clip.mkv") and hits[0].kind == "video"
    assert (hits[0].start, hits[0].end, hits[0].text) == (3.2, 5.4, "the blue scene is here")
    frames = engine.search("anything", kind="frame", k=50)
    assert {h.path for h in frames} == {str(folder / "clip.mkv"), str(folder / "silent.mp4")}
    assert all(h.start <= h.frame_time <= h.end for h in frames)
    from mmsearch.search.filters import Filters

    only_mp4 = engine.search("the red scene is here", kind="video", k=5, filters=Filters(ext=("mp4",)))
    assert [Path(h.path).name for h in only_mp4] == ["silent.mp4"]
    mixed = engine.search("the red scene is here", kind="any", k=5)
    assert any(h.kind == "video" for h in mixed)

    board = engine.describe(folder / "clip.mkv")
    assert [(s.start, s.end) for s in board.shots] == [(0.0, 3.0), (3.0, 6.0)]
    assert [[line.text for line in s.lines] for s in board.shots] == [
        ["the red scene is here"],
        ["the blue scene is here"],
    ]
    from mmsearch.errors import NotIndexedError

    with pytest.raises(NotIndexedError):
        engine.describe(folder / "broken.mp4")


def test_resync_rename_and_change(engine, tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    write_video(folder / "talk.mp4", [2.0, 2.0])
    first = engine.ingest(folder)
    assert first.videos == 1 and first.texts_added.get("transcript", 0) == 0  # no audio: no transcript, no error
    assert not first.failed

    (folder / "talk.srt").write_text(
        "1\n00:00:01,000 --> 00:00:03,000\nhello from the harbour tour\n", encoding="utf-8"
    )
    second = engine.ingest(folder)
    assert second.resynced == 1 and second.videos == 0  # the sidecar re-read, no decoding
    assert engine.search("hello from the harbour tour", kind="transcript", k=1)[0].text == "hello from the harbour tour"

    (folder / "talk.srt").rename(folder / "renamed.srt")
    (folder / "talk.mp4").rename(folder / "renamed.mp4")
    third = engine.ingest(folder)
    assert third.videos == 0 and third.reused == 1 and third.removed == 1  # the keyframes came along
    assert [Path(h.path).name for h in engine.search("x", kind="frame", k=10)] == ["renamed.mp4"] * 2

    write_video(folder / "renamed.mp4", [1.0, 1.0, 1.0])
    fourth = engine.ingest(folder)
    assert fourth.updated == 1 and fourth.videos == 1
    assert len(engine.describe(folder / "renamed.mp4").shots) == 3
    assert engine.ingest(folder).skipped == 1


def test_bad_videos_are_per_file_errors(tmp_path: Path) -> None:
    from mmsearch.errors import UnreadableMediaError
    from mmsearch.video.extract import ExtractSettings

    good = write_video(tmp_path / "good.mp4", [2.0, 2.0])
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    audio_only = tmp_path / "audio.mp4"
    with av.open(str(audio_only), "w") as out:
        stream = out.add_stream("aac", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    cases = {
        truncated: "cannot read video",
        audio_only: "no video stream",
        tmp_path / "missing.mp4": "cannot read video",
    }
    for path, reason in cases.items():
        with pytest.raises(UnreadableMediaError, match=reason):
            extract_keyframes(str(path))
    with pytest.raises(UnreadableMediaError, match="over the limit"):
        extract_keyframes(str(good), ExtractSettings(max_pixels=1000))


def test_ten_bit_and_variable_frame_rate_videos(tmp_path: Path) -> None:
    ten_bit = extract_keyframes(str(write_video(tmp_path / "ten.mp4", [2.0, 2.0], pix_fmt="yuv420p10le")))
    assert ten_bit.cuts == [2.0] and len(ten_bit.keyframes) == 2
    vfr = extract_keyframes(str(write_video(tmp_path / "vfr.mkv", [3.0, 3.0, 3.0], jitter=True)))
    assert [round(c, 2) for c in vfr.cuts] == [3.0, 6.0]
    assert sorted({(k.shot_start, k.shot_end) for k in vfr.keyframes})[0][0] == 0.0


def test_b_frames_are_skipped_and_cuts_still_found(tmp_path: Path) -> None:
    from mmsearch.video.extract import ExtractSettings

    path = str(write_video(tmp_path / "b.mp4", [3.0, 3.0, 3.0], b_frames=3))
    skipping = extract_keyframes(path)
    full = extract_keyframes(path, ExtractSettings(skip_nonref=False))
    assert full.decoded == 72 and skipping.decoded < 0.75 * full.decoded
    assert full.cuts == [3.0, 6.0]
    assert all(abs(a - b) <= 3 / 8 for a, b in zip(skipping.cuts, full.cuts, strict=True))
