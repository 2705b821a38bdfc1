"""Every JSON document mmsearch writes validates against its shipped schema (mmsearch/schemas/*.json), and
the CLI's --json, the Python API's to_dict() and the HTTP service agree on it (issue 11 item 10)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from mmsearch import Engine, schemas
from mmsearch.cli import cli


def valid(name: str, document: dict) -> dict:
    jsonschema.validate(document, schemas.load(name), cls=jsonschema.Draft202012Validator)
    return document


@pytest.mark.parametrize("name", schemas.NAMES)
def test_the_schemas_are_valid_json_schemas(name: str) -> None:
    schema = schemas.load(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema_version"] == {"const": 1}


def test_a_document_that_drifts_is_caught() -> None:
    with pytest.raises(jsonschema.ValidationError):
        valid(
            "hits",
            {
                "schema_version": 1,
                "query": {"image": "x"},
                "image": None,
                "kind": "image",
                "mode": "hybrid",
                "k": 1,
                "hits": [],
                "note": None,
            },
        )


@pytest.fixture
def home(tmp_path: Path, photo_dir: Path) -> str:
    home = str(tmp_path / "home")
    assert CliRunner().invoke(cli, ["--home", home, "--model", "fake:16", "ingest", str(photo_dir)]).exit_code == 0
    return home


def run_json(home: str, *args: str) -> list[dict]:
    result = CliRunner().invoke(cli, ["--home", home, *args])
    assert result.exit_code in (0, 3), result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_cli_outputs_validate(home: str, photo_dir: Path, tmp_path: Path) -> None:
    text = valid("hits", run_json(home, "query", "red", "--json", "--explain", "--weight", "keyword=1")[0])
    image = valid("hits", run_json(home, "query", "--image", str(photo_dir / "a.jpg"), "--json")[0])
    both = valid("hits", run_json(home, "query", "red", "--image", str(photo_dir / "a.jpg"), "--json")[0])
    assert (text["query"], text["image"]) == ("red", None)  # the same keys and types for text and image queries
    assert (image["query"], image["image"]) == (None, str(photo_dir / "a.jpg"))
    assert both["query"] == "red" and set(text) == set(image) == set(both)
    queries = tmp_path / "q.txt"
    queries.write_text('red\n"broken\n')
    lines = [valid("hits", line) for line in run_json(home, "query", "--from-file", str(queries))]
    assert [line["mode"] for line in lines] == ["hybrid", "hybrid"] and "error" in lines[1]
    assert set(lines[0]) - {"line"} == set(text)
    status = valid("status", run_json(home, "status", "--json")[0])
    assert "index" not in status  # it repeated indexes["image"]
    tsv = tmp_path / "q.tsv"
    tsv.write_text("red\ta.jpg\n")
    valid("eval", run_json(home, "eval", str(tsv), "--json")[0])
    valid("reindex", run_json(home, "reindex", "--json")[0])


def test_python_api_and_service_give_the_same_documents(tmp_path: Path, photo_dir: Path) -> None:
    with Engine.open(tmp_path / "home", model="fake:16", workers=1, batch_size=4) as engine:
        engine.ingest(photo_dir)
        api = valid("hits", engine.search("red", k=3, mode="dense").to_dict())
        api_status = valid("status", engine.status().to_dict())
        from fastapi.testclient import TestClient

        from mmsearch.web.app import create_app
        from mmsearch.web.security import TOKEN_HEADER as WEB_TOKEN

        app = create_app(engine)
        client = TestClient(app, base_url="http://127.0.0.1", headers={WEB_TOKEN: app.state.web.auth.token})
        served = valid("hits", client.get("/api/v1/search", params={"q": "red", "k": 3, "mode": "dense"}).json())
        served_status = valid("status", client.get("/api/v1/status").json())
    assert served == api
    assert set(served_status) == set(api_status)
    cli = valid("hits", run_json(str(tmp_path / "home"), "query", "red", "-k", "3", "--mode", "dense", "--json")[0])
    assert cli == api


def test_hits_with_evidence_validate() -> None:
    from mmsearch.search.fusion import explain, fuse
    from mmsearch.search.hits import Asked, Hit, Hits

    results = {"image": [(1, 0.9), (2, 0.5)], "keyword": [(2, 3.0)]}
    fused = fuse(results, {"image": 1.0, "keyword": 0.5}, k=2, method="zscore")
    reasons = explain(results, fused, {"image": 1.0, "keyword": 0.5}, "zscore")
    hits = [
        Hit(rank, score, asset, f"/x/{asset}.jpg", "image", 1, 1, evidence=reasons[asset].to_dict())
        for rank, (asset, score) in enumerate(fused, 1)
    ]
    document = valid("hits", Hits(hits, asked=Asked("dog")).to_dict())
    assert document["hits"][0]["evidence"]["contributions"]["keyword"]["weight"] == 0.5
