"""The CLI contract (issue 11 items 4, 5, 8, 9; issue 12 item 8): paths resolved once on the client, the same
with and without the query service; every option value checked, with one line and exit code 2."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmsearch import Engine
from mmsearch.cli import cli
from mmsearch.search.filters import Filters
from mmsearch.web.server import WebServer as QueryService
from tests.conftest import make_image


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """``lib/20/a.jpg``, ``lib/2021/b.jpg``, ``lib/2021/sub dir/c.png``: a prefix that crosses a folder name."""
    root = tmp_path / "lib"
    for seed, name in enumerate(["20/a.jpg", "2021/b.jpg", "2021/sub dir/c.png"]):
        make_image(root / name, seed)
    return root


@pytest.fixture(params=["local", "service"])
def searching(request, tmp_path: Path, library: Path) -> Iterator[tuple[str, QueryService | None]]:
    """A home with ``library`` ingested; for ``service``, with its query service running (the CLI uses it)."""
    home = tmp_path / "home"
    with Engine.open(home, model="fake:16", workers=1, batch_size=4) as engine:
        engine.ingest(library)
        if request.param == "local":
            yield str(home), None
            return
        service = QueryService(engine)
        service.start()
        thread = threading.Thread(target=service.serve_forever, daemon=True)
        thread.start()
        try:
            yield str(home), service
        finally:
            service.shutdown()
            thread.join(5)


def query(home: str, *args: str):
    return CliRunner().invoke(cli, ["--home", home, "query", *args])


def paths_of(result) -> list[str]:
    assert result.exit_code == 0, result.output
    return sorted(result.output.splitlines())


# -- 11.4: --path -------------------------------------------------------------------------------------------


def test_path_filter_is_resolved_on_the_client(searching, library: Path, monkeypatch) -> None:
    home, service = searching
    monkeypatch.chdir(library)
    in_2021 = sorted([str(library / "2021/b.jpg"), str(library / "2021/sub dir/c.png")])
    for given in ("2021", "./2021", "2021/", str(library / "2021")):
        assert paths_of(query(home, "x", "--path", given, "--paths")) == in_2021, given
    monkeypatch.setenv("HOME", str(library))
    for given in ("~/2021", "~/2021/"):  # as quoted in a shell: '~/2021' reaches us unexpanded
        assert paths_of(query(home, "x", "--path", given, "--paths")) == in_2021, given
    assert paths_of(query(home, "x", "--path", "2021/sub*", "--paths")) == [str(library / "2021/sub dir/c.png")]
    assert paths_of(query(home, "x", "--path", "*.png", "--paths")) == [str(library / "2021/sub dir/c.png")]
    if service is not None:
        assert service.service.requests > 0


def test_path_prefix_matches_whole_components(searching, library: Path) -> None:
    home, _ = searching
    assert paths_of(query(home, "x", "--path", str(library / "20"), "--paths")) == [str(library / "20/a.jpg")]


def test_a_filter_that_excludes_everything_says_so(searching, library: Path) -> None:
    home, _ = searching
    result = CliRunner().invoke(cli, ["--home", home, "query", "x", "--path", str(library / "2019")])
    assert result.exit_code == 0
    assert "no results" in result.output
    assert "note: the filters (path " in result.output and "exclude every indexed file" in result.output
    as_json = json.loads(query(home, "x", "--path", str(library / "2019"), "--json").output)
    assert as_json["hits"] == [] and "exclude every indexed file" in as_json["note"]
    assert json.loads(query(home, "x", "--json").output)["note"] is None


def test_filters_match_on_components() -> None:
    from mmsearch.store.records import StoredFile

    def accepted(prefix: str, path: str) -> bool:
        return Filters(path=prefix).accepts(StoredFile(1, path, "image", 1, 1, 1))

    assert accepted("/lib/20", "/lib/20/x.jpg") and accepted("/lib/20/", "/lib/20/x.jpg")
    assert accepted("/lib/20/x.jpg", "/lib/20/x.jpg") and accepted("/", "/lib/x.jpg")
    assert not accepted("/lib/20", "/lib/2021/x.jpg") and not accepted("/lib/20", "/lib/20x.jpg")


# -- 11.5: image paths --------------------------------------------------------------------------------------


def test_image_paths_are_resolved_on_the_client(searching, library: Path, monkeypatch) -> None:
    home, service = searching
    monkeypatch.chdir(library / "2021")
    for args in (["--image", "b.jpg"], ["image:b.jpg"], ["image:'./b.jpg' + 0.1:x"], ["--image", "../2021/b.jpg"]):
        result = query(home, *args, "--paths", "-k", "1")
        assert result.exit_code == 0, (args, result.output)
        assert result.output == f"{library / '2021/b.jpg'}\n", args
    monkeypatch.setenv("HOME", str(library))
    assert query(home, 'image:"~/20/a.jpg"', "--paths", "-k", "1").output == f"{library / '20/a.jpg'}\n"
    echoed = json.loads(query(home, "--image", "b.jpg", "--json", "-k", "1").output)
    assert echoed["image"] == str(library / "2021/b.jpg")
    if service is not None:
        # --image queries went through the service (uploads); image: terms inside a text are searched here
        assert service.service.requests >= 3


def test_from_file_entries_are_resolved_and_bad_lines_reported(tmp_path: Path, library: Path, monkeypatch) -> None:
    home = str(tmp_path / "home")
    assert CliRunner().invoke(cli, ["--home", home, "--model", "fake:16", "ingest", str(library)]).exit_code == 0
    monkeypatch.chdir(library / "20")
    queries = tmp_path / "queries.txt"
    queries.write_bytes(b'image:a.jpg\n"unterminated\n\nbad \xff byte\nred\n')
    result = CliRunner().invoke(cli, ["--home", home, "query", "--from-file", str(queries), "-k", "1"])
    assert result.exit_code == 3
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["line"] for line in lines] == [1, 2, 4, 5]
    assert lines[0]["hits"][0]["path"] == str(library / "20/a.jpg") and lines[0]["mode"] == "hybrid"
    assert "unterminated" in lines[1]["error"] and lines[1]["hits"] == []
    assert "not valid UTF-8" in lines[2]["error"]
    assert lines[3]["query"] == "red" and len(lines[3]["hits"]) == 1 and "error" not in lines[3]
    assert "line 2: unterminated" in result.stderr and "line 4: not valid UTF-8" in result.stderr


def test_from_file_reads_a_bounded_amount(tmp_path: Path, photo_dir: Path) -> None:
    home = str(tmp_path / "home")
    assert CliRunner().invoke(cli, ["--home", home, "--model", "fake:16", "ingest", str(photo_dir)]).exit_code == 0
    result = CliRunner().invoke(cli, ["--home", home, "query", "--from-file", "/dev/zero"])
    assert result.exit_code == 2 and "larger than 16 MiB" in result.output
    assert "Traceback" not in result.output


# -- 11.8 / 12.8: every option value checked -----------------------------------------------------------------


@pytest.fixture
def ingested(tmp_path: Path, photo_dir: Path) -> str:
    home = str(tmp_path / "home")
    assert CliRunner().invoke(cli, ["--home", home, "--model", "fake:16", "ingest", str(photo_dir)]).exit_code == 0
    return home


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--weight", "captions=0"],
            "unknown weight 'captions'; valid names: image, caption, transcript, frame, keyword",
        ),
        (["--weight", "bogus=1"], "unknown weight 'bogus'"),
        (["--weight", "image=nan"], "must be a finite number"),
        (["--weight", "image=inf"], "must be a finite number"),
        (["--weight", "image=-1"], "cannot be below 0"),
        (["--min-score", "nan"], "min_score must be a finite number"),
        (["-k", str(10**30)], "k must be at most 10000"),
        (["--path", "x", "--weight", "keyword"], "is not NAME=WEIGHT"),
    ],
)
def test_bad_option_values_are_usage_errors(ingested: str, args: list[str], message: str) -> None:
    for command in (["query", "red"], ["query", "red", "--no-service"]):
        result = CliRunner().invoke(cli, ["--home", ingested, *command, *args])
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
        errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and message in errors[0]  # one line (click adds its usage hint before it)


def test_bad_eval_options_are_usage_errors(ingested: str, tmp_path: Path) -> None:
    queries = tmp_path / "q.tsv"
    queries.write_text("red\ta.jpg\n")
    result = CliRunner().invoke(cli, ["--home", ingested, "eval", str(queries), "--weight", "bogus=1"])
    assert result.exit_code == 2 and "valid names" in result.output


def test_extreme_dates_work(ingested: str) -> None:
    early = CliRunner().invoke(cli, ["--home", ingested, "query", "red", "--since", "0001-01-01", "--paths"])
    assert early.exit_code == 0, early.output
    assert len(early.output.splitlines()) == 6
    late = CliRunner().invoke(cli, ["--home", ingested, "query", "red", "--until", "9999-12-31", "--paths"])
    assert late.exit_code == 0 and len(late.output.splitlines()) == 6
    nothing = CliRunner().invoke(cli, ["--home", ingested, "query", "red", "--until", "0001-01-01"])
    assert nothing.exit_code == 0 and "exclude every indexed file" in nothing.output


def test_diverse_goes_with_cutoff(ingested: str) -> None:
    for cutoff in ("gap", "zscore"):
        args = ["--home", ingested, "query", "red", "--diverse", "--cutoff", cutoff, "--json"]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert 1 <= len(json.loads(result.output)["hits"]) <= 6


def test_a_query_that_is_not_utf8_is_a_usage_error(ingested: str) -> None:
    result = CliRunner().invoke(cli, ["--home", ingested, "query", "bad \udcff byte"])  # what Python makes of \xff
    assert result.exit_code == 2 and "not valid UTF-8" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    "change",
    [
        {"k": "ten"},
        {"k": "1.5"},
        {"k": str(10**30)},
        {"kind": "3"},
        {"weight": "abc"},
        {"weight": "image=x"},
        {"weight": "bogus=1"},
        {"weight": "image=nan"},
        {"min_score": "nan"},
        {"since": "yesterday"},
        {"diverse": "maybe"},
        {"mode": "psychic"},
    ],
)
def test_service_answers_wrong_values_with_a_4xx(tmp_path: Path, photo_dir: Path, change: dict) -> None:
    """Over HTTP a wrong option is a client error with a message, never a 500 (the web app, GET /api/v1/search)."""
    from fastapi.testclient import TestClient

    from mmsearch.web.app import create_app
    from mmsearch.web.security import TOKEN_HEADER

    with Engine.open(tmp_path / "home", model="fake:16", workers=1, batch_size=4) as engine:
        engine.ingest(photo_dir)
        app = create_app(engine)
        client = TestClient(app, base_url="http://127.0.0.1", headers={TOKEN_HEADER: app.state.web.auth.token})
        answer = client.get("/api/v1/search", params={"q": "red", "k": "3", **change})
        assert 400 <= answer.status_code < 500, answer.text
        assert answer.json()["error"]


# -- 11.9: the table -----------------------------------------------------------------------------------------


def test_the_table_fits_80_columns_and_never_splits_a_file_name(capsys, monkeypatch, tmp_path: Path) -> None:
    from mmsearch.cli.output import print_hits
    from mmsearch.search.hits import Hit

    deep = "/data/archive/photographs/by-year/2019/summer holidays/italy/rome/day three"
    names = ["IMG_20190704_123456_with_a_long_name.jpg", "short.png", "x" * 70 + ".jpg"]
    evidence = {
        "method": "zscore",
        "contributions": {
            "image": {"weight": 1.0, "raw_score": 0.31, "rank": 1, "normalised": 1.2, "contribution": 1.2}
        },
    }
    hits = [Hit(i, 0.5, i, f"{deep}/{name}", "image", 1, 1, evidence=evidence) for i, name in enumerate(names, 1)]
    monkeypatch.chdir(tmp_path)
    print_hits(hits[:2], "'dog'", explain=True, width=80)
    fitting = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 80 for line in fitting), fitting
    print_hits(hits, "'dog'", explain=True, width=80)  # a name longer than the room: shown whole all the same
    lines = capsys.readouterr().out.splitlines()
    for name in names:  # each name whole, on one line
        assert sum(name in line for line in lines) == 1, (name, lines)
    assert any(line.startswith("#1 zscore: image 0.310 #1") for line in lines)  # evidence after the table
    assert not any("zscore" in line and ".jpg" in line for line in lines)


def test_paths_are_shown_relative_to_the_current_folder(capsys, monkeypatch, tmp_path: Path) -> None:
    from mmsearch.cli.output import display_path, print_hits
    from mmsearch.search.hits import Hit

    assert display_path("/a/b/c.jpg", "/a") == "b/c.jpg" and display_path("/ab/c.jpg", "/a") == "/ab/c.jpg"
    monkeypatch.chdir(tmp_path)
    print_hits([Hit(1, 0.5, 1, str(tmp_path / "sub" / "c.jpg"), "image", 1, 1)], "'x'", width=80)
    out = capsys.readouterr().out
    assert " sub/c.jpg" in out and str(tmp_path) not in out


def test_shorten_path_keeps_whole_names() -> None:
    from hypothesis import given
    from hypothesis import strategies as st

    from mmsearch.cli.output import shorten_path

    part = st.text("abc de", min_size=1, max_size=12)

    @given(folders=st.lists(part, max_size=8), name=part, width=st.integers(5, 80))
    def check(folders: list[str], name: str, width: int) -> None:
        path = "/".join(["", *folders, name])
        short = shorten_path(path, width)
        assert short.endswith("/" + name)
        assert len(short) <= max(width, len("…/" + name))
        if len(path) <= width:
            assert short == path
        kept = short.split("/")[:-1]
        assert all(piece == "…" or piece in ["", *folders] for piece in kept)

    check()


def test_print0_ends_each_path_with_nul(tmp_path: Path, photo_dir: Path) -> None:
    home = str(tmp_path / "home")
    (photo_dir / "with space.jpg").write_bytes((photo_dir / "a.jpg").read_bytes())
    assert CliRunner().invoke(cli, ["--home", home, "--model", "fake:16", "ingest", str(photo_dir)]).exit_code == 0
    for flag in ("-0", "--print0"):
        result = CliRunner().invoke(cli, ["--home", home, "query", "red", flag, "-k", "7"])
        assert result.exit_code == 0
        paths = result.stdout.split("\0")
        assert paths[-1] == "" and len(paths) == 8 and str(photo_dir / "with space.jpg") in paths


def test_the_ingest_summary_says_what_ran_each_tower_and_the_batch(capsys) -> None:
    from mmsearch.cli.output import print_ingest_report
    from mmsearch.ingest.report import IngestReport

    report = IngestReport("photos", "fixture", added=3, embedded=3, batch_size=2)
    report.precision = {"image": {"engine": "onnx", "dtype": "fp32", "batch": 2}, "text": {"dtype": "bf16"}}
    print_ingest_report(report)
    assert "  precision: image onnx fp32, text bf16; images encoded 2 a call\n" in capsys.readouterr().out
    print_ingest_report(IngestReport("photos", "fixture", skipped=3, batch_size=2, precision=report.precision))
    assert "  precision: image onnx fp32, text bf16\n" in capsys.readouterr().out  # nothing encoded: no batch said
