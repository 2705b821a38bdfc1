"""The HTTP API on the fixture model's DEV home (TestClient): text and example searches find the right photos, the
answers are the engine's, thumbnails of real JPEGs."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from mmsearch.web.app import create_app
from mmsearch.web.security import TOKEN_HEADER
from tests.conftest import DEV

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(dev_engine) -> TestClient:
    engine, _ = dev_engine
    app = create_app(engine)
    return TestClient(app, base_url="http://127.0.0.1", headers={TOKEN_HEADER: app.state.web.auth.token})


def first_captions(count: int) -> list[tuple[str, str]]:
    with (DEV / "captions.tsv").open(encoding="utf-8") as handle:
        rows = [(row["image"], row["caption"]) for row in csv.DictReader(handle, delimiter="\t") if row["n"] == "1"]
    return sorted(rows)[:count]


def test_a_caption_finds_its_photo_as_the_engine_does(client: TestClient, dev_engine) -> None:
    engine, _ = dev_engine
    for photo, caption in first_captions(5):
        answer = client.get("/api/v1/search", params={"q": caption, "k": 10})
        assert answer.status_code == 200
        hits = answer.json()["hits"]
        assert photo in [hit["path"].rsplit("/", 1)[-1] for hit in hits]
        assert hits == [hit.to_dict() for hit in engine.search(caption, k=10)]


def test_an_uploaded_photo_and_more_like_this_find_the_photo(client: TestClient) -> None:
    photo = sorted((DEV / "images").glob("*.jpg"))[7]
    upload = {"image": (photo.name, photo.read_bytes(), "image/jpeg")}
    by_upload = client.post("/api/v1/search/image", files=upload, params={"k": 5}).json()["hits"]
    assert by_upload[0]["path"] == str(photo)
    like = client.get("/api/v1/search", params={"like": by_upload[0]["id"], "k": 5}).json()["hits"]
    assert [hit["id"] for hit in like] == [hit["id"] for hit in by_upload]


def test_thumbnails_of_real_photos(client: TestClient) -> None:
    _, caption = first_captions(1)[0]
    hit = client.get("/api/v1/search", params={"q": caption, "k": 1}).json()["hits"][0]
    for size, side in (("grid", 320), ("preview", 1280)):
        answer = client.get(f"/api/v1/assets/{hit['id']}/thumbnail", params={"size": size})
        assert answer.status_code == 200
        picture = Image.open(io.BytesIO(answer.content))
        original = Image.open(DEV / "images" / hit["path"].rsplit("/", 1)[-1])
        assert max(picture.size) == min(side, max(original.size))
    details = client.get(f"/api/v1/assets/{hit['id']}").json()
    assert len([t for t in details["texts"] if t["kind"] == "caption"]) == 5
