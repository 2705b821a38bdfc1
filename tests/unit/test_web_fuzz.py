"""A property-based fuzz of the HTTP API from its own OpenAPI schema (schemathesis, bounded examples): whatever
the schema allows, and whatever it does not, the service answers without a server error (no 5xx), and its
answers match the schema it publishes.

``MMSEARCH_FUZZ_EXAMPLES`` raises the number of examples per operation (default 25).
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

from mmsearch import Engine
from mmsearch.ingest.report import IngestReport
from mmsearch.web.app import create_app
from mmsearch.web.security import LOOPBACK_HOSTS, TOKEN_HEADER
from tests.web_library import build_library

EXAMPLES = int(os.environ.get("MMSEARCH_FUZZ_EXAMPLES", "25"))


class NoIngest:
    """Ingest jobs of the fuzz touch no folder (it may well ask for "/"): they end at once, empty."""

    def __enter__(self) -> NoIngest:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def ingest(self, folder: str, progress=None, captions=()) -> IngestReport:
        return IngestReport(folder=folder)


@pytest.fixture(scope="module")
def web_app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    with Engine.open(folder / "home", model="fake:16", workers=1, batch_size=4) as engine:
        engine.ingest(build_library(folder / "library"))
        assert engine.warm_up()
        # schemathesis's ASGI client says Host: testserver
        yield create_app(engine, open_engine=NoIngest, allowed_hosts=LOOPBACK_HOSTS | {"testserver"})


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_the_api_never_answers_a_server_error(web_app, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", web_app)
    token = {TOKEN_HEADER: web_app.state.web.auth.token}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 11

    fuzzed = 0
    for operation in operations:  # each operation gets its own budget of examples

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def answers_without_server_errors(case) -> None:
            response = case.call(headers=token)
            checks = [not_a_server_error] + ([response_schema_conformance] if response.status_code < 400 else [])
            case.validate_response(response, checks=checks)

        try:
            answers_without_server_errors()
            fuzzed += 1
        except Unsatisfiable:  # nothing invalid can be sent to an operation without inputs (GET /health...)
            assert mode == GenerationMode.NEGATIVE
    assert fuzzed >= (len(operations) if mode == GenerationMode.POSITIVE else 8)


def test_the_schema_is_versioned_and_complete(web_app) -> None:
    from fastapi.testclient import TestClient

    published = TestClient(web_app, base_url="http://127.0.0.1").get("/api/v1/openapi.json").json()
    paths = set(published["paths"])
    assert all(path.startswith("/api/v1/") for path in paths)
    assert {
        "/api/v1/search",
        "/api/v1/search/image",
        "/api/v1/status",
        "/api/v1/health",
        "/api/v1/assets/{asset_id}",
        "/api/v1/assets/{asset_id}/thumbnail",
        "/api/v1/assets/{asset_id}/media",
        "/api/v1/ingest",
        "/api/v1/ingest/{job_id}",
    } <= paths
    search = {p["name"] for p in published["paths"]["/api/v1/search"]["get"]["parameters"]}
    cli_options = {"q", "kind", "mode", "k", "fusion", "weight", "path", "ext", "since", "until", "min_score"}
    assert cli_options | {"cutoff", "diverse", "explain", "like"} <= search
