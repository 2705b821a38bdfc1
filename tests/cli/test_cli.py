"""The CLI through click's CliRunner: exit codes, messages, output formats."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmsearch.cli import cli


@pytest.fixture
def run(tmp_path: Path):
    home = tmp_path / "home"

    def invoke(*args: str, input: str | None = None):
        return CliRunner().invoke(cli, ["--home", str(home), *args], input=input, catch_exceptions=False)

    return invoke


def test_help_lists_commands_and_global_options() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for word in ("ingest", "query", "status", "reindex", "--home", "--model", "--device", "--db-url"):
        assert word in result.output


def test_ingest_query_status_round_trip(run, photo_dir: Path) -> None:
    result = run("--model", "fake:16", "ingest", str(photo_dir))
    assert result.exit_code == 0, result.output
    assert "6 added, 0 updated, 0 removed, 0 unchanged, 0 failed" in result.output

    again = run("ingest", str(photo_dir), "--json")
    assert again.exit_code == 0
    report = json.loads(again.output)
    assert (report["unchanged"], report["added"], report["failed_count"]) == (6, 0, 0)  # "skipped" until 11.10

    table = run("query", "a red square", "-k", "3")
    assert table.exit_code == 0
    assert "top 3 for 'a red square'" in table.output

    paths = run("query", "--image", str(photo_dir / "a.jpg"), "-k", "2", "--paths")
    assert paths.exit_code == 0
    lines = paths.output.splitlines()
    assert len(lines) == 2 and lines[0] == str(photo_dir / "a.jpg")

    as_json = json.loads(run("query", "blue", "--json", "-k", "4").output)
    assert as_json["query"] == "blue"
    assert [hit["rank"] for hit in as_json["hits"]] == [1, 2, 3, 4]
    assert set(as_json["hits"][0]) == {
        "rank",
        "score",
        "id",
        "path",
        "kind",
        "width",
        "height",
        "match",
        "text",
        "start",
        "end",
        "item_id",
    }
    assert as_json["kind"] == "image" and as_json["hits"][0]["match"] == "image"

    status = run("status")
    assert status.exit_code == 0
    assert "fake:16" in status.output and "6 images" in status.output and "up to date" in status.output
    status_json = json.loads(run("status", "--json").output)
    assert status_json["files_by_kind"] == {"image": 6}
    assert status_json["indexes"]["image"]["kind"] == "faiss-flat-ip"  # "index" repeated it (issue 11.10)

    rebuilt = run("reindex")
    assert rebuilt.exit_code == 0 and "6 vectors" in rebuilt.output


def test_status_shows_the_index_kind_and_the_threshold_setting(run, tmp_path: Path, photo_dir: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text("hnsw_threshold = 4\n")
    assert run("--model", "fake:16", "ingest", str(photo_dir)).exit_code == 0
    status = run("status")
    assert "below 4 vectors per collection" in status.output and "faiss-hnsw-ip, 6 vectors" in status.output
    as_json = json.loads(run("status", "--json").output)
    assert as_json["hnsw_threshold"] == 4 and as_json["hnsw_shrink_below"] == 2
    assert {c: (i["kind"], i["vectors"]) for c, i in as_json["indexes"].items()} == {
        "image": ("faiss-hnsw-ip", 6),
        "caption": ("faiss-flat-ip", 0),
        "transcript": ("faiss-flat-ip", 0),
    }
    assert json.loads(run("query", "--image", str(photo_dir / "a.jpg"), "-k", "1", "--json").output)["hits"][0][
        "path"
    ] == str(photo_dir / "a.jpg")
    result = CliRunner().invoke(cli, ["--home", str(home), "status"], env={"MMSEARCH_HNSW_THRESHOLD": "100"})
    assert "faiss-hnsw-ip, 6 vectors, up to date; becomes faiss-flat-ip on next use" in result.output


def test_from_file_prints_one_json_line_per_query(run, photo_dir: Path, tmp_path: Path) -> None:
    run("--model", "fake:16", "ingest", str(photo_dir))
    queries = tmp_path / "q.txt"
    queries.write_text("a dog\n\nred car\nwater\n")
    result = run("query", "--from-file", str(queries), "-k", "2")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [line["query"] for line in lines] == ["a dog", "red car", "water"]
    assert all(len(line["hits"]) == 2 for line in lines)
    stdin = run("query", "--from-file", "-", input="a dog\n")
    assert json.loads(stdin.output)["query"] == "a dog"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest", "/no/such/folder"], "Error: folder not found: /no/such/folder"),
        (["query", "a dog"], "Error: nothing is indexed"),
        (["--model", "fake:x", "ingest", "."], "Error: the fake encoder takes a dimension"),
        (["--model", "ViT-B-32", "ingest", "."], "Error: model 'ViT-B-32' names no weights"),
    ],
)
def test_errors_are_clean_messages_with_non_zero_exit(run, args: list[str], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_empty_folder_and_bad_query_image(run, photo_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run("--model", "fake:16", "ingest", str(empty))
    assert result.exit_code == 1 and "no supported media" in result.output
    run("--model", "fake:16", "ingest", str(photo_dir))
    (tmp_path / "bad.jpg").write_text("no")
    result = run("query", "--image", str(tmp_path / "bad.jpg"))
    assert result.exit_code == 1 and "cannot read query image" in result.output


def test_model_mismatch_exits_non_zero(run, photo_dir: Path) -> None:
    run("--model", "fake:16", "ingest", str(photo_dir))
    result = run("--model", "fake:32", "query", "a dog")
    assert result.exit_code == 1
    assert "built with fake:16" in result.output


def test_failed_files_are_listed_on_stderr(run, photo_dir: Path) -> None:
    (photo_dir / "broken.jpg").write_text("not really")
    result = run("--model", "fake:16", "ingest", str(photo_dir))
    assert result.exit_code == 3  # completed with per-file failures (issue 11 item 7; was 0)
    assert "1 failed" in result.stdout
    assert "failed:" in result.stderr and "broken.jpg: not an image" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["query"],
        ["query", "x", "--text", "y"],
        ["query", "x", "--json", "--paths"],
        ["query", "x", "--weight", "image"],
        ["query", "x", "--kind", "document"],
    ],
)
def test_usage_errors_exit_2(run, args: list[str]) -> None:
    assert run(*args).exit_code == 2


def test_environment_variables_configure_the_cli(tmp_path: Path, photo_dir: Path) -> None:
    env = {"MMSEARCH_HOME": str(tmp_path / "envhome"), "MMSEARCH_MODEL": "fake:8"}
    result = CliRunner().invoke(cli, ["ingest", str(photo_dir), "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["model"] == "fake:8"
    assert (tmp_path / "envhome" / "mmsearch.db").is_file()


def test_config_file_in_home_sets_the_model(tmp_path: Path, photo_dir: Path) -> None:
    home = tmp_path / "cfghome"
    home.mkdir()
    (home / "config.toml").write_text('model = "fake:12"\n')
    result = CliRunner().invoke(cli, ["--home", str(home), "ingest", str(photo_dir), "--json"])
    assert json.loads(result.output)["model"] == "fake:12"


def test_progress_bar_can_be_forced_on(run, photo_dir: Path) -> None:
    result = run("--model", "fake:16", "ingest", str(photo_dir), "--progress")
    assert result.exit_code == 0, result.output
    assert "6 added" in result.stdout


def test_eval_prints_a_table_and_json(run, photo_dir: Path, tmp_path: Path) -> None:
    assert run("--model", "fake:16", "ingest", str(photo_dir)).exit_code == 0
    queries = tmp_path / "queries.tsv"
    queries.write_text("query\trelevant\nred\ta.jpg\nblue things\tb\n", encoding="utf-8")
    table = run("eval", str(queries))
    assert table.exit_code == 0, table.output
    for word in ("mode", "R@1", "R@5", "R@10", "MRR", "nDCG@10", "dense", "keyword", "hybrid"):
        assert word in table.output
    report = json.loads(run("eval", str(queries), "--mode", "dense", "--json").output)
    assert [mode["mode"] for mode in report["modes"]] == ["dense"]
    assert set(report["modes"][0]["metrics"]) == {"recall@1", "recall@5", "recall@10", "mrr", "ndcg@10"}
    assert report["modes"][0]["queries"] == 2


def test_eval_rejects_a_malformed_queries_file(run, photo_dir: Path, tmp_path: Path) -> None:
    assert run("--model", "fake:16", "ingest", str(photo_dir)).exit_code == 0
    queries = tmp_path / "queries.tsv"
    queries.write_text("a query without relevant paths\n", encoding="utf-8")
    result = run("eval", str(queries))
    assert result.exit_code == 1 and "line 1: expected a query and at least one relevant path" in result.output


def test_query_modes_explain_and_filters(run, photo_dir: Path) -> None:
    assert run("--model", "fake:16", "ingest", str(photo_dir)).exit_code == 0
    explained = run("query", "a.jpg", "--explain", "-k", "2")
    assert explained.exit_code == 0 and "image" in explained.output
    keyword = json.loads(run("query", "a", "--mode", "keyword", "--json").output)
    assert keyword["mode"] == "keyword" and [Path(h["path"]).name for h in keyword["hits"]] == ["a.jpg"]
    no_words = run("query", "--image", str(photo_dir / "a.jpg"), "--mode", "keyword")
    assert no_words.exit_code == 2 and "keyword mode needs query text" in no_words.output
    pngs = run("query", "x", "--ext", "png", "--paths").output.splitlines()
    assert pngs and all(line.endswith(".png") for line in pngs)
    bad_syntax = run("query", '"unterminated')
    assert bad_syntax.exit_code == 2 and "Error:" in bad_syntax.output


def test_image_to_caption_and_text_to_transcript_from_the_cli(run, tmp_path: Path) -> None:
    from tests.conftest import make_image
    from tests.unit.test_texts_ingest import write_wav

    folder = tmp_path / "library"
    make_image(folder / "dog.jpg", 1)
    (folder / "dog.txt").write_text("a brown dog on the beach\n", encoding="utf-8")
    write_wav(folder / "talk.wav")  # a real (short) recording: the subtitle sidecar is the transcript
    (folder / "talk.srt").write_text("1\n00:00:01,000 --> 00:00:04,500\nwelcome to the harbour tour\n")
    assert run("--model", "fake:16", "ingest", str(folder)).exit_code == 0
    captions = json.loads(run("query", "--image", str(folder / "dog.jpg"), "--kind", "caption", "--json").output)
    assert captions["kind"] == "caption"
    assert [(h["path"], h["match"], h["text"]) for h in captions["hits"]] == [
        (str(folder / "dog.jpg"), "caption", "a brown dog on the beach")
    ]
    segments = json.loads(run("query", "harbour tour", "--kind", "transcript", "--json").output)["hits"]
    assert [(h["kind"], h["text"], h["start"], h["end"]) for h in segments] == [
        ("audio", "welcome to the harbour tour", 1.0, 4.5)
    ]
    assert run("query", "harbour tour", "--kind", "audio", "--paths").output == f"{folder / 'talk.wav'}\n"
    table = run("query", "harbour tour", "--kind", "audio")
    assert table.exit_code == 0 and "top 1 for 'harbour tour'" in table.output


def test_precision_reaches_the_encoder_from_flag_and_environment(run, photo_dir: Path, monkeypatch) -> None:
    import mmsearch.models
    from mmsearch.encoders import create_encoder

    asked: list[str] = []

    def recording(spec: str, device: str = "auto", precision: str = "auto", engine: str = "auto"):
        asked.append(precision)
        return create_encoder(spec, device, precision)

    monkeypatch.setattr(mmsearch.models, "create_encoder", recording)
    assert run("--precision", "fp32", "--model", "fake:16", "ingest", str(photo_dir)).exit_code == 0
    monkeypatch.setenv("MMSEARCH_PRECISION", "bf16")
    assert run("query", "red").exit_code == 0
    assert asked == ["fp32", "bf16"]
    assert run("--precision", "fp16", "status").exit_code == 2


def test_engine_reaches_the_encoder_from_flag_and_environment(run, photo_dir: Path, monkeypatch) -> None:
    import mmsearch.models
    from mmsearch.encoders import create_encoder

    asked: list[str] = []

    def recording(spec: str, device: str = "auto", precision: str = "auto", engine: str = "auto"):
        asked.append(engine)
        return create_encoder(spec, device, precision, engine)

    monkeypatch.setattr(mmsearch.models, "create_encoder", recording)
    assert run("--engine", "onnx", "--model", "fake:16", "ingest", str(photo_dir)).exit_code == 0
    monkeypatch.setenv("MMSEARCH_ENGINE", "torch")
    assert run("query", "red").exit_code == 0
    monkeypatch.delenv("MMSEARCH_ENGINE")
    assert run("query", "blue").exit_code == 0
    assert asked == ["onnx", "torch", "auto"]
    assert run("--engine", "tensorrt", "status").exit_code == 2
