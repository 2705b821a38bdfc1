"""Transcript text without a model: sidecar parsing and choice, text splitting, segment shaping."""

from __future__ import annotations

import codecs
import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmsearch.audio.segment import normalise_segments
from mmsearch.audio.subtitles import (
    TRANSCRIPT_SIDECAR_SUFFIXES,
    clean_cue_text,
    read_transcript_sidecar,
    source_of,
    transcript_sidecar,
)
from mmsearch.errors import ConfigError, UnreadableMediaError
from mmsearch.textitems import Segment
from mmsearch.textsplit import split_text

SPECIALS = 2  # start and end of text, as CLIP-style tokenizers count them


def count_words(text: str) -> int:
    """A word-additive counter: one token per 4 characters of each word, plus the special tokens."""
    return SPECIALS + sum(-(-len(word) // 4) for word in text.split())


def count_chars(text: str) -> int:
    """A counter that is not additive over words: spaces cost too (as byte-level BPE merges can)."""
    return SPECIALS + -(-len(text) // 3)


class CountingCounter:
    """Wraps a counter and records how often, and on how many characters in all, it was called."""

    def __init__(self, counter) -> None:
        self.counter = counter
        self.calls = 0
        self.chars = 0

    def __call__(self, text: str) -> int:
        self.calls += 1
        self.chars += len(text)
        return self.counter(text)


def write(path: Path, text: str, encoding: str = "utf-8", bom: bytes = b"") -> str:
    path.write_bytes(bom + text.encode(encoding))
    return str(path)


# -- sidecar choice -------------------------------------------------------------------------------------------


def test_sidecar_prefers_srt_then_vtt_then_txt() -> None:
    assert TRANSCRIPT_SIDECAR_SUFFIXES == (".srt", ".vtt", ".txt")
    names = ["talk.mp3", "talk.txt", "talk.vtt", "talk.srt", "other.srt"]
    assert transcript_sidecar("/a/talk.mp3", names) == "/a/talk.srt"
    assert transcript_sidecar("/a/talk.mp3", ["talk.txt", "talk.vtt"]) == "/a/talk.vtt"
    assert transcript_sidecar("/a/talk.mp3", ["talk.txt"]) == "/a/talk.txt"


def test_sidecar_suffix_case_insensitive_stem_exact() -> None:
    assert transcript_sidecar("/a/talk.mp3", ["talk.SRT"]) == "/a/talk.SRT"
    assert transcript_sidecar("/a/talk.mp3", ["Talk.srt", "talk2.srt", "talk.mp3.srt", "talk.json"]) is None
    assert transcript_sidecar("/a/talk.mp3", []) is None
    # A stem with dots keeps them: only the last suffix is the audio's.
    assert transcript_sidecar("/a/ep.1.flac", ["ep.1.vtt", "ep.srt"]) == "/a/ep.1.vtt"


def test_source_of() -> None:
    assert [source_of(p) for p in ("a.srt", "b.VTT", "c.Txt")] == ["srt", "vtt", "txt"]
    with pytest.raises(UnreadableMediaError, match="not a transcript sidecar"):
        source_of("a.json")


# -- sidecar parsing ------------------------------------------------------------------------------------------

SRT = """1
00:00:01,000 --> 00:00:03,500
<i>Hello</i>   there,
<font color="#ff0000">friend</font>.

2
00:00:04,250 --> 00:00:06,000
{\\an8}Second &amp; last

3
00:00:07,000 --> 00:00:08,000
<b> </b>
"""

VTT = """WEBVTT - a title

NOTE a comment that is no cue

intro
00:01.000 --> 00:02.500 align:start
<v Alice>Good   morning</v>
<c.loud>everyone</c>

01:00:00.000 --> 01:00:02.000
<v.first Bob>Late &lt;word&gt;

00:00:05.000 --> 00:00:06.000
<00:00:05.500>karaoke <00:00:05.800>style
"""


def test_read_srt_cleans_tags_and_joins_lines(tmp_path: Path) -> None:
    segments = read_transcript_sidecar(write(tmp_path / "a.srt", SRT))
    assert segments == [
        Segment(1.0, 3.5, "Hello there, friend."),
        Segment(4.25, 6.0, "Second & last"),
    ]


def test_read_vtt_cleans_voices_and_orders_by_start(tmp_path: Path) -> None:
    segments = read_transcript_sidecar(write(tmp_path / "a.vtt", VTT))
    assert segments == [
        Segment(1.0, 2.5, "Good morning everyone"),
        Segment(5.0, 6.0, "karaoke style"),
        Segment(3600.0, 3602.0, "Late <word>"),
    ]


@pytest.mark.parametrize("suffix", [".srt", ".vtt", ".txt"])
@pytest.mark.parametrize(("encoding", "bom"), [("utf-8", codecs.BOM_UTF8), ("utf-16-le", codecs.BOM_UTF16_LE)])
def test_read_with_bom(tmp_path: Path, suffix: str, encoding: str, bom: bytes) -> None:
    text = {".srt": "1\n00:00:00,000 --> 00:00:01,000\nCafé\n", ".vtt": "WEBVTT\n\n00:00.000 --> 00:01.000\nCafé\n"}
    path = write(tmp_path / f"a{suffix}", text.get(suffix, "Café\n"), encoding, bom)
    segments = read_transcript_sidecar(path)
    assert [s.text for s in segments] == ["Café"]


def test_read_windows_1252_and_crlf_and_leading_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "a.srt", "\r\n\r\n1\r\n00:00:00,500 --> 00:00:01,000\r\nNaïve café\r\n", "cp1252")
    assert read_transcript_sidecar(path) == [Segment(0.5, 1.0, "Naïve café")]


def test_read_txt_is_one_untimed_segment(tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", "  First line.\n\nSecond\tline.  \n")
    assert read_transcript_sidecar(path) == [Segment(0.0, None, "First line. Second line.")]


@pytest.mark.parametrize(("name", "text"), [("a.txt", " \n\t"), ("a.srt", ""), ("a.vtt", "WEBVTT\n\nNOTE nothing\n")])
def test_read_empty_files_give_no_segments(tmp_path: Path, name: str, text: str) -> None:
    assert read_transcript_sidecar(write(tmp_path / name, text)) == []


def test_end_before_start_is_clamped(tmp_path: Path) -> None:
    path = write(tmp_path / "a.srt", "1\n00:00:05,000 --> 00:00:04,000\nbackwards\n")
    assert read_transcript_sidecar(path) == [Segment(5.0, 5.0, "backwards")]


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("a.srt", b"just some words\nnot a subtitle\n", "malformed SubRip"),
        ("a.srt", b"1\n00:00:aa,000 --> 00:00:01,000\nbad time\n", "malformed SubRip"),
        ("a.vtt", b"1\n00:00:01.000 --> 00:00:02.000\nno header\n", "malformed WebVTT"),
        ("a.vtt", b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nok\n\x00\x01\x02", "binary"),
        ("a.txt", b"\xff\xfe\x00\xd8", "not valid utf-16-le"),
        ("a.txt", b"caf\x81\x8d\x8f\x90\x9d", "unknown encoding"),
    ],
)
def test_malformed_files_raise_one_line_reasons(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UnreadableMediaError, match=reason) as caught:
        read_transcript_sidecar(str(path))
    assert "\n" not in str(caught.value)
    assert name in str(caught.value)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(UnreadableMediaError, match="cannot read transcript"):
        read_transcript_sidecar(str(tmp_path / "gone.srt"))


def test_clean_cue_text() -> None:
    assert clean_cue_text("<v Speaker One>Hi</v>\n<i>there</i>  &amp; &nbsp;you") == "Hi there & you"
    assert clean_cue_text("<b></b> \n ") == ""


# -- split_text -----------------------------------------------------------------------------------------------


def test_split_text_fits_and_empty() -> None:
    assert split_text("  a  short\ntext ", count_words, 32) == ["a short text"]
    assert split_text(" \n ", count_words, 32) == []


def test_split_text_prefers_sentence_ends() -> None:
    text = "One two three four five. Six sev eig nin ten."  # 7 tokens, then 5
    chunks = split_text(text, count_words, SPECIALS + 8)
    assert chunks == ["One two three four five.", "Six sev eig nin ten."]


def test_split_text_ignores_a_sentence_end_that_leaves_a_tiny_chunk() -> None:
    chunks = split_text("Yes. a b c d e f g h i j", count_words, SPECIALS + 6)
    assert chunks[0] == "Yes. a b c d e"


def test_split_text_hard_splits_a_long_word() -> None:
    word = "x" * 50
    chunks = split_text(f"a {word} b", count_words, SPECIALS + 3)  # 12 characters fit
    assert all(count_words(c) <= SPECIALS + 3 for c in chunks)
    assert "".join(chunks).replace(" ", "") == f"a{word}b"
    assert chunks[0] == "a"
    assert chunks[1] == "x" * 12


def test_split_text_rejects_a_context_with_no_room() -> None:
    with pytest.raises(ConfigError, match="no room"):
        split_text("far too long for it", count_words, SPECIALS)


def test_split_text_counts_are_linear() -> None:
    counter = CountingCounter(count_chars)
    text = " ".join(f"w{i % 50}{'.' if i % 17 == 0 else ''}" for i in range(20_000))
    chunks = split_text(text, counter, 32)
    assert all(count_chars(c) <= 32 for c in chunks)
    assert counter.calls < 2 * len(chunks) + 100  # one per distinct word, about one per chunk
    assert counter.chars < 10 * len(text)


texts = st.lists(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzé.!?,'", min_size=1, max_size=30), min_size=0, max_size=60
).map(" ".join)


@given(text=texts, budget=st.integers(min_value=1, max_value=20), additive=st.booleans())
@settings(max_examples=200, deadline=None)
def test_split_text_properties(text: str, budget: int, additive: bool) -> None:
    counter = count_words if additive else count_chars
    max_tokens = SPECIALS + budget
    chunks = split_text(text, counter, max_tokens)
    assert all(counter(chunk) <= max_tokens for chunk in chunks)
    assert all(chunk and chunk == " ".join(chunk.split()) for chunk in chunks)
    assert "".join("".join(chunks).split()) == "".join(text.split())
    if all(counter(word) <= max_tokens for word in text.split()):
        assert " ".join(chunks).split() == text.split()


# -- normalise_segments ---------------------------------------------------------------------------------------


def test_short_segments_merge_into_neighbours() -> None:
    segments = [
        Segment(0.0, 0.5, "Hi."),
        Segment(0.6, 4.0, "this is a longer segment"),
        Segment(4.0, 9.0, "and another complete sentence here"),
        Segment(9.0, 9.4, "ok"),
    ]
    out = normalise_segments(segments, count_words, 64)
    assert out == [
        Segment(0.0, 4.0, "Hi. this is a longer segment"),
        Segment(4.0, 9.4, "and another complete sentence here ok"),
    ]


def test_merge_stops_at_the_context() -> None:
    segments = [Segment(float(i), float(i) + 0.5, "word") for i in range(10)]
    out = normalise_segments(segments, count_words, SPECIALS + 3)
    assert [s.text for s in out] == ["word word word"] * 3 + ["word"]
    assert out[0] == Segment(0.0, 2.5, "word word word")


def test_long_segment_split_with_times_by_words() -> None:
    text = " ".join(f"w{i}" for i in range(12))
    out = normalise_segments([Segment(10.0, 22.0, text)], count_words, SPECIALS + 4, min_words=1, min_seconds=0)
    assert [s.text for s in out] == ["w0 w1 w2 w3", "w4 w5 w6 w7", "w8 w9 w10 w11"]
    assert [(s.start, s.end) for s in out] == [(10.0, 14.0), (14.0, 18.0), (18.0, 22.0)]


def test_untimed_segment_split_keeps_start_and_no_end() -> None:
    text = " ".join(f"w{i}" for i in range(8))
    out = normalise_segments([Segment(0.0, None, text)], count_words, SPECIALS + 4, min_words=1)
    assert out == [Segment(0.0, None, "w0 w1 w2 w3"), Segment(0.0, None, "w4 w5 w6 w7")]


def test_normalise_orders_drops_empty_and_joins_unknown_ends() -> None:
    segments = [Segment(5.0, None, "later words come here"), Segment(1.0, 2.0, "  "), Segment(0.0, 3.0, "first one")]
    out = normalise_segments(segments, count_words, 64)
    assert out == [Segment(0.0, None, "first one later words come here")]


def _segments(draw, disjoint: bool) -> list[Segment]:
    count = draw(st.integers(min_value=0, max_value=12))
    segments = []
    clock = draw(st.floats(min_value=0, max_value=100, allow_nan=False))
    for _ in range(count):
        start = clock if disjoint else draw(st.floats(min_value=0, max_value=100, allow_nan=False))
        length = draw(st.one_of(st.none(), st.floats(min_value=0, max_value=30, allow_nan=False)))
        words = draw(st.lists(st.text(alphabet="abcdefgh.", min_size=1, max_size=12), max_size=25))
        segments.append(Segment(start, None if length is None else start + length, " ".join(words)))
        clock = start + (length or 0) + draw(st.floats(min_value=0, max_value=5, allow_nan=False))
    return segments


@st.composite
def disjoint_segments(draw) -> list[Segment]:
    """Segments one after the other, as Whisper and most subtitle files give them."""
    return _segments(draw, disjoint=True)


@st.composite
def any_segments(draw) -> list[Segment]:
    """Segments in any order, overlapping or not."""
    return _segments(draw, disjoint=False)


def _check_shape(segments: list[Segment], out: list[Segment], counter, max_tokens: int) -> None:
    """Every chunk fits, none is empty, starts ascend, each time span lies within the input's."""
    assert all(s.text.strip() and counter(s.text) <= max_tokens for s in out)
    starts = [s.start for s in out]
    assert starts == sorted(starts)
    if segments:
        low = min(s.start for s in segments)
        high = max([s.end for s in segments if s.end is not None] + [s.start for s in segments])
        for s in out:
            assert low <= s.start <= high
            assert s.end is None or s.start <= s.end <= high


@given(segments=disjoint_segments(), budget=st.integers(min_value=2, max_value=16), additive=st.booleans())
@settings(max_examples=150, deadline=None)
def test_normalise_segments_properties(segments: list[Segment], budget: int, additive: bool) -> None:
    counter = count_words if additive else count_chars
    max_tokens = SPECIALS + budget
    out = normalise_segments(segments, counter, max_tokens)
    _check_shape(segments, out, counter, max_tokens)
    assert "".join("".join(s.text for s in out).split()) == "".join("".join(s.text for s in segments).split())
    if all(counter(w) <= max_tokens for s in segments for w in s.text.split()):
        assert " ".join(s.text for s in out).split() == " ".join(s.text for s in segments).split()
    for before, after in itertools.pairwise(out):  # disjoint in, disjoint out
        assert before.end is None or before.end <= after.start or before.start == after.start


@given(segments=any_segments(), budget=st.integers(min_value=2, max_value=16), additive=st.booleans())
@settings(max_examples=100, deadline=None)
def test_normalise_overlapping_segments_keeps_every_character(
    segments: list[Segment], budget: int, additive: bool
) -> None:
    counter = count_words if additive else count_chars
    max_tokens = SPECIALS + budget
    out = normalise_segments(segments, counter, max_tokens)
    _check_shape(segments, out, counter, max_tokens)
    assert sorted("".join(s.text for s in out).replace(" ", "")) == sorted(
        "".join(s.text for s in segments).replace(" ", "")
    )
