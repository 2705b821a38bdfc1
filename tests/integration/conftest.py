"""Fixtures shared by the integration tests: the DEV photos ingested once with the fixture model."""

from __future__ import annotations

import pytest

from tests.conftest import DEV, FIXTURE_MODEL, require_fixture_model


@pytest.fixture(scope="session")
def dev_engine(tmp_path_factory):
    """An engine over the 300 DEV photos with their 1,500 captions (from DEV's captions.tsv as a manifest)."""
    require_fixture_model()
    from mmsearch import Engine

    home = tmp_path_factory.mktemp("dev-home")
    # float32: tests here compare with open_clip's own float32 vectors exactly (bf16: test_precision_fixture.py);
    # on torch, whose encoder these tests look into (ONNX Runtime: test_onnx_image.py)
    with Engine.open(home, model=FIXTURE_MODEL, device="cpu", precision="fp32", engine="torch") as engine:
        report = engine.ingest(DEV / "images", captions=[DEV / "captions.tsv"])
        yield engine, report
