"""Video from the command line: ingest, query --kind video/frame, show (storyboard), eval with media fragments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmsearch.cli import cli

pytest.importorskip("av", reason="PyAV not installed (pip install 'mmsearch[audio]')")

from tests.videos import write_video

SRT = (
    "1\n00:00:00,500 --> 00:00:02,600\nthe red scene is here\n\n"
    "2\n00:00:03,200 --> 00:00:05,400\nthe blue scene is here\n"
)


@pytest.fixture
def library(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "videos"
    folder.mkdir()
    write_video(folder / "clip.mp4", [3.0, 3.0])
    (folder / "clip.srt").write_text(SRT, encoding="utf-8")
    return tmp_path / "home", folder


def _run(home: Path, *args: str):
    return CliRunner().invoke(cli, ["--home", str(home), *args], catch_exceptions=False)


def test_video_query_show_and_eval(library: tuple[Path, Path], tmp_path: Path) -> None:
    home, folder = library
    ingested = _run(home, "--model", "fake:16", "ingest", str(folder))
    assert ingested.exit_code == 0, ingested.output
    assert "video: 1 videos, 6 s" in ingested.output

    hits = json.loads(_run(home, "query", "the blue scene is here", "--kind", "video", "--json").output)["hits"]
    assert len(hits) == 1 and hits[0]["kind"] == "video"
    assert hits[0]["start"] is not None and hits[0]["end"] is not None
    frames = json.loads(_run(home, "query", "x", "--kind", "frame", "--json").output)["hits"]
    assert frames and all(h["start"] <= h["frame_time"] <= h["end"] for h in frames)
    speech = _run(home, "query", "the blue scene is here", "--kind", "video", "--weight", "frame=0", "--json")
    assert [(h["start"], h["end"], h["match"]) for h in json.loads(speech.output)["hits"]] == [(3.2, 5.4, "transcript")]
    table = _run(home, "query", "the blue scene is here", "--kind", "video", "--explain")
    assert table.exit_code == 0 and "frame" in table.output and "transcript" in table.output

    board = json.loads(_run(home, "show", str(folder / "clip.mp4"), "--json").output)
    assert [(s["start"], s["end"]) for s in board["shots"]] == [(0.0, 3.0), (3.0, 6.0)]
    assert board["shots"][1]["lines"][0]["text"] == "the blue scene is here"
    shown = _run(home, "show", str(folder / "clip.mp4"))
    assert shown.exit_code == 0 and "the red scene is here" in shown.output and "00:03.0" in shown.output
    missing = _run(home, "show", str(folder / "nope.mp4"))
    assert missing.exit_code == 1 and "not in the index" in missing.output

    queries = tmp_path / "q.tsv"
    queries.write_text("the blue scene is here\tclip.mp4#t=3,6\n", encoding="utf-8")
    report = json.loads(_run(home, "eval", str(queries), "--kind", "video", "--json", "--weight", "frame=0").output)
    assert {m["mode"]: m["metrics"]["recall@1"] for m in report["modes"]} == {
        "dense": 1.0,
        "keyword": 1.0,
        "hybrid": 1.0,
    }
    bad = tmp_path / "bad.tsv"
    bad.write_text("q\tclip.mp4#t=9,3\n", encoding="utf-8")
    refused = _run(home, "eval", str(bad))
    assert refused.exit_code == 1 and "start < end" in refused.output
