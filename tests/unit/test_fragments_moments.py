"""Media-fragment relevant answers (``clip.mp4#t=12,19``), video moments and storyboards (pure logic)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmsearch.evaluation import evaluate, matched_key
from mmsearch.fragments import Fragment, FragmentError, parse_fragment
from mmsearch.search.hits import Hit
from mmsearch.search.moments import best_moment
from mmsearch.store.records import StoredText
from mmsearch.video.storyboard import build_storyboard


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("clip.mp4", Fragment("clip.mp4")),
        ("clip.mp4#t=12,19", Fragment("clip.mp4", 12.0, 19.0)),
        ("clip.mp4#t=12", Fragment("clip.mp4", 12.0, math.inf)),
        ("clip.mp4#t=,19", Fragment("clip.mp4", 0.0, 19.0)),
        ("dir/clip.mp4#t=npt:1:02,01:03.5", Fragment("dir/clip.mp4", 62.0, 63.5)),
        ("clip.mp4#t=0:01:00,0:01:30", Fragment("clip.mp4", 60.0, 90.0)),
    ],
)
def test_fragments_parse(entry: str, expected: Fragment) -> None:
    assert parse_fragment(entry) == expected


@pytest.mark.parametrize("entry", ["clip.mp4#t=19,12", "clip.mp4#t=a,b", "clip.mp4#xywh=1,2,3,4", "c#t=,", "c#t=-1,2"])
def test_malformed_fragments_are_refused(entry: str) -> None:
    with pytest.raises(FragmentError):
        parse_fragment(entry)


def test_a_hit_answers_a_moment_only_with_an_overlapping_span() -> None:
    relevant = ("clip.mp4#t=12,19", "photo.jpg")
    assert matched_key("/v/clip.mp4", relevant, 18.0, 25.0) == "clip.mp4#t=12,19"
    assert matched_key("/v/clip.mp4", relevant, 19.0, 25.0) == "/v/clip.mp4"  # touching is not overlapping
    assert matched_key("/v/clip.mp4", relevant, None, None) == "/v/clip.mp4"  # no span: not that moment
    assert matched_key("/v/clip.mp4", relevant, 15.0, None) == "clip.mp4#t=12,19"  # a point inside
    assert matched_key("/p/photo.jpg", relevant) == "photo.jpg"
    assert matched_key("/v/other.mp4", relevant, 12.0, 19.0) == "/v/other.mp4"


@given(st.floats(0, 100), st.floats(0.1, 50), st.floats(0, 100), st.floats(0.1, 50))
def test_overlap_is_symmetric(a: float, la: float, b: float, lb: float) -> None:
    first, second = Fragment("x", a, a + la), Fragment("x", b, b + lb)
    assert first.overlaps(second.start, second.end) == second.overlaps(first.start, first.end)


def test_eval_scores_moments() -> None:
    from mmsearch.evaluation import EvalQuery

    def hit(path: str, start: float, end: float) -> Hit:
        return Hit(1, 1.0, 1, path, "video", None, None, "frame", start=start, end=end)

    answers = {"dogs": [hit("/v/a.mp4", 0, 5), hit("/v/a.mp4", 10, 15)], "cats": [hit("/v/b.mp4", 30, 35)]}
    queries = [EvalQuery("dogs", ("a.mp4#t=11,14",)), EvalQuery("cats", ("b.mp4#t=0,10",))]
    report = evaluate(lambda text, mode: answers[text], queries, ["dense"], 10, "video")
    assert report.modes[0].metrics["recall@1"] == 0.0
    assert report.modes[0].metrics["recall@5"] == 0.5
    assert report.modes[0].metrics["mrr"] == 0.25


def _item(item_id: int, kind: str, start: float, end: float, at: float | None = None, text: str = "") -> StoredText:
    return StoredText(item_id, 1, kind, "x", text, start, end, at)


def test_the_moment_follows_the_main_evidence() -> None:
    frame = _item(1, "frame", 10.0, 20.0, at=14.0)
    segment = _item(2, "transcript", 12.0, 16.0, text="a dog jumps")
    elsewhere = _item(3, "transcript", 40.0, 44.0, text="later")
    by_frame = best_moment("frame", frame, segment)
    assert (by_frame.start, by_frame.end, by_frame.frame_time, by_frame.text) == (10.0, 20.0, 14.0, "a dog jumps")
    by_speech = best_moment("transcript", frame, segment)
    assert (by_speech.start, by_speech.end, by_speech.frame_time, by_speech.text) == (12.0, 16.0, 14.0, "a dog jumps")
    apart = best_moment("frame", frame, elsewhere)
    assert apart.text is None and apart.frame_time == 14.0
    assert best_moment("transcript", frame, elsewhere).frame_time is None
    assert best_moment("keyword", None, None) is None
    assert best_moment("transcript", frame, None).start == 10.0


def test_storyboard_groups_frames_by_shot_and_lines_by_time() -> None:
    items = [
        _item(1, "frame", 0.0, 5.0, at=2.5),
        _item(2, "frame", 5.0, 20.0, at=7.5),
        _item(3, "frame", 5.0, 20.0, at=12.5),
        _item(4, "transcript", 1.0, 3.0, text="hello"),
        _item(5, "transcript", 4.0, 8.0, text="a dog"),
        _item(6, "transcript", 30.0, 31.0, text="after the end"),
    ]
    board = build_storyboard("/v/a.mp4", items)
    assert [(s.start, s.end, s.frames) for s in board.shots] == [(0.0, 5.0, [2.5]), (5.0, 20.0, [7.5, 12.5])]
    assert [[line.text for line in s.lines] for s in board.shots] == [["hello"], ["a dog"]]
    assert [line.text for line in board.lines] == ["after the end"]
    assert board.to_dict()["duration"] == 20.0


def test_fused_moment_prefers_the_shot_where_frame_and_speech_agree() -> None:
    from mmsearch.search.moments import fused_moment

    shots = [(0.0, 5.0), (5.0, 10.0), (10.0, 15.0)]
    frames = [
        (_item(n + 1, "frame", a, b, at=a + 2), s)
        for n, ((a, b), s) in enumerate(zip(shots, [0.30, 0.29, 0.10], strict=True))
    ]
    segments = [
        (_item(11, "transcript", 0.5, 4.5, text="first"), 0.2),
        (_item(12, "transcript", 5.5, 9.5, text="second"), 0.9),
        (_item(13, "transcript", 10.5, 14.5, text="third"), 0.1),
    ]
    both = fused_moment(frames, segments)
    assert (both.start, both.end, both.frame_time, both.text, both.item_id) == (5.0, 10.0, 7.0, "second", 2)
    frames_only = fused_moment(frames, segments, speech_weight=0.0)
    assert (frames_only.start, frames_only.text) == (0.0, "first")
    speech_only = fused_moment(frames, segments, frame_weight=0.0)
    assert (speech_only.start, speech_only.end, speech_only.frame_time) == (5.5, 9.5, 7.0)
    assert fused_moment([], [], 1.0, 1.0) is None
    assert fused_moment([], segments, 1.0, 0.0) is None
