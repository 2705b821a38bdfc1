"""The HTTP API (``mmsearch.web``) through FastAPI's TestClient on the fake encoder: searches answer as the engine
does, assets, thumbnails and media by id, ingest jobs, and clear 4xx answers for bad input."""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from mmsearch import Engine
from mmsearch.search.filters import Filters
from mmsearch.web.app import create_app
from mmsearch.web.jobs import IngestJobs
from mmsearch.web.security import TOKEN_HEADER
from mmsearch.web.thumbnails import SIZES
from tests.conftest import make_image
from tests.web_library import build_library


@pytest.fixture
def library(tmp_path: Path) -> Path:
    return build_library(tmp_path / "library")


@pytest.fixture
def engine(tmp_path: Path, library: Path) -> Iterator[Engine]:
    with Engine.open(tmp_path / "home", model="fake:16", workers=1, batch_size=4) as opened:
        report = opened.ingest(library)
        assert report.failed == []
        yield opened


@pytest.fixture
def client(engine: Engine) -> TestClient:
    app = create_app(engine)
    return TestClient(app, base_url="http://127.0.0.1", headers={TOKEN_HEADER: app.state.web.auth.token})


def hits(response) -> list[dict]:
    assert response.status_code == 200, response.text
    return response.json()["hits"]


def asset_id(client: TestClient, name: str) -> int:
    found = hits(client.get("/api/v1/search", params={"q": name, "kind": "any", "mode": "keyword", "k": 20}))
    return next(hit["id"] for hit in found if Path(hit["path"]).name == name)


# -- search ---------------------------------------------------------------------------------------------------


def test_text_search_answers_as_the_engine_does(client: TestClient, engine: Engine) -> None:
    params = {"q": "a dog on the beach", "kind": "any", "mode": "dense", "ext": "jpg,png", "weight": "caption=2"}
    params["k"] = 4
    answer = client.get("/api/v1/search", params=params)
    expected = engine.search(
        "a dog on the beach", k=4, kind="any", mode="dense", filters=Filters(ext=("jpg", "png")), weights={"caption": 2}
    )
    assert hits(answer) == [hit.to_dict() for hit in expected]
    assert answer.json()["query"] == "a dog on the beach" and answer.json()["mode"] == "dense"
    assert {Path(hit["path"]).suffix for hit in hits(answer)} <= {".jpg", ".png"}


def test_every_cli_option_is_a_query_parameter(client: TestClient, engine: Engine) -> None:
    params = {"q": "dog", "fusion": "rrf", "cutoff": "gap", "min_score": "-1", "explain": "true", "path": "*", "k": 3}
    found = hits(client.get("/api/v1/search", params=params))
    expected = engine.search(
        "dog", k=3, fusion="rrf", cutoff="gap", min_score=-1.0, explain=True, filters=Filters(path="*")
    )
    assert found == [hit.to_dict() for hit in expected]
    assert all(hit["evidence"]["method"] == "rrf" for hit in found)
    diverse = hits(client.get("/api/v1/search", params={"q": "dog", "diverse": "true", "k": 3}))
    assert diverse == [hit.to_dict() for hit in engine.search("dog", k=3, diverse=True)]


def test_date_filters_take_iso_dates_and_seconds(client: TestClient) -> None:
    assert hits(client.get("/api/v1/search", params={"q": "dog", "until": "2000-01-01"})) == []
    assert hits(client.get("/api/v1/search", params={"q": "dog", "until": "946684800"})) == []
    since = {"q": "dog", "since": "2000-01-01", "k": 20, "kind": "any"}
    assert len(hits(client.get("/api/v1/search", params=since))) == 6


def test_search_by_an_uploaded_image_finds_that_image(client: TestClient, library: Path) -> None:
    upload = {"image": ("query.jpg", (library / "dog.jpg").read_bytes(), "image/jpeg")}
    answer = client.post("/api/v1/search/image", files=upload, params={"k": 3})
    assert Path(hits(answer)[0]["path"]).name == "dog.jpg"
    assert answer.json()["query"] is None and answer.json()["image"] == "upload:query.jpg"
    mixed = client.post("/api/v1/search/image", files=upload, params={"q": "a puppy", "kind": "any"})
    assert mixed.status_code == 200 and mixed.json()["query"] == "a puppy"


def test_the_upload_folder_is_left_empty(client: TestClient, engine: Engine, library: Path) -> None:
    upload = {"image": ("query.jpg", (library / "cat.png").read_bytes(), "image/png")}
    assert client.post("/api/v1/search/image", files=upload).status_code == 200
    assert list((Path(engine.settings.home) / "uploads").iterdir()) == []


def test_more_like_this_by_asset_id(client: TestClient, engine: Engine, library: Path) -> None:
    dog = asset_id(client, "dog.jpg")
    like = client.get("/api/v1/search", params={"like": dog, "k": 3})
    assert like.json()["query"] is None and like.json()["image"] == f"asset:{dog}"
    assert hits(like) == [hit.to_dict() for hit in engine.search(image=library / "dog.jpg", k=3)]
    talk = asset_id(client, "talk.wav")
    spoken = hits(client.get("/api/v1/search", params={"like": talk, "kind": "transcript"}))
    assert spoken[0]["id"] == talk and spoken[0]["match"] == "transcript"


def test_status_and_health(client: TestClient) -> None:
    status = client.get("/api/v1/status").json()
    assert status["files_by_kind"] == {"image": 5, "audio": 1}
    before = client.get("/api/v1/health").json()
    client.get("/api/v1/search", params={"q": "dog"})
    after = client.get("/api/v1/health").json()
    assert after["requests"] == before["requests"] + 1 and after["pid"] == os.getpid()


# -- assets ------------------------------------------------------------------------------------------------------


def test_asset_metadata_has_texts_and_dates(client: TestClient, library: Path) -> None:
    talk = client.get(f"/api/v1/assets/{asset_id(client, 'talk.wav')}").json()
    assert talk["kind"] == "audio" and talk["path"] == str(library / "talk.wav")
    segments = [(t["start"], t["end"], t["text"]) for t in talk["texts"] if t["kind"] == "transcript"]
    assert segments == [
        (1.0, 3.5, "welcome to the harbour tour today"),
        (5.0, 8.0, "the big ships arrive at noon every day"),
    ]
    assert talk["modified"] == pytest.approx((library / "talk.wav").stat().st_mtime)
    dog = client.get(f"/api/v1/assets/{asset_id(client, 'dog.jpg')}").json()
    assert [t["text"] for t in dog["texts"]] == ["a brown dog on the beach", "a puppy running in sand"]
    assert (dog["width"], dog["height"]) == (96, 72)


def test_unknown_assets_are_404(client: TestClient) -> None:
    for path in ("/api/v1/assets/999999", "/api/v1/assets/999999/thumbnail", "/api/v1/assets/999999/media"):
        answer = client.get(path)
        assert answer.status_code == 404 and "no asset 999999" in answer.json()["error"]
    assert client.get("/api/v1/search", params={"like": 999999}).status_code == 404


def thumbnail_of(client: TestClient, asset: int, size: str = "grid") -> Image.Image:
    answer = client.get(f"/api/v1/assets/{asset}/thumbnail", params={"size": size})
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
    return Image.open(io.BytesIO(answer.content))


def test_thumbnails_apply_exif_orientation_in_two_sizes(client: TestClient, library: Path) -> None:
    rotated = thumbnail_of(client, asset_id(client, "rotated.jpg"))
    assert rotated.size == (60, 120)  # stored 120x60 with "rotate 90°"
    assert rotated.getpixel((30, 10))[0] > 150  # the red half is on top once turned
    big = make_image(library / "big.jpg", 9, (2000, 1000))
    with Engine.open(client.app.state.web.home, model="fake:16") as other:
        other.ingest(library)
    assert max(thumbnail_of(client, asset_id(client, "big.jpg")).size) == SIZES["grid"]
    assert max(thumbnail_of(client, asset_id(client, "big.jpg"), "preview").size) == SIZES["preview"]
    assert big.is_file()


def test_thumbnails_are_cached_and_remade_when_the_file_changes(client: TestClient, library: Path) -> None:
    dog = asset_id(client, "dog.jpg")
    thumbnail_of(client, dog)
    folder = client.app.state.web.thumbnails.root / str(dog)
    (first,) = folder.iterdir()
    made = first.stat().st_mtime_ns
    thumbnail_of(client, dog)
    assert first.stat().st_mtime_ns == made  # served from the cache
    make_image(library / "dog.jpg", 7, (64, 128))
    with Engine.open(client.app.state.web.home, model="fake:16") as other:
        other.ingest(library)
    assert thumbnail_of(client, dog).size == (64, 128)  # the new picture (never enlarged)
    (second,) = folder.iterdir()
    assert second != first  # the stale one is gone


def test_thumbnails_go_with_their_asset(client: TestClient, library: Path) -> None:
    cat = asset_id(client, "cat.png")
    thumbnail_of(client, cat)
    folder = client.app.state.web.thumbnails.root / str(cat)
    assert folder.is_dir()
    (library / "cat.png").unlink()
    job = client.post("/api/v1/ingest", json={"folder": str(library)}).json()
    client.app.state.web.jobs.wait(job["id"], 60)
    assert client.get(f"/api/v1/ingest/{job['id']}").json()["report"]["removed"] == 1
    assert not folder.exists()


def test_audio_has_no_thumbnail(client: TestClient) -> None:
    answer = client.get(f"/api/v1/assets/{asset_id(client, 'talk.wav')}/thumbnail")
    assert answer.status_code == 404 and "is audio" in answer.json()["error"]


def test_media_answers_range_requests(client: TestClient, library: Path) -> None:
    talk = asset_id(client, "talk.wav")
    data = (library / "talk.wav").read_bytes()
    whole = client.get(f"/api/v1/assets/{talk}/media")
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["content-type"].startswith("audio/") and whole.headers["accept-ranges"] == "bytes"
    part = client.get(f"/api/v1/assets/{talk}/media", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    tail = client.get(f"/api/v1/assets/{talk}/media", headers={"Range": f"bytes={len(data) + 5}-"})
    assert tail.status_code == 416


# -- ingest jobs ---------------------------------------------------------------------------------------------------


def test_ingest_job_reports_progress_and_per_file_errors(client: TestClient, tmp_path: Path) -> None:
    more = tmp_path / "more"
    for seed in range(5):
        make_image(more / f"new{seed}.png", 20 + seed)
    (more / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    started = client.post("/api/v1/ingest", json={"folder": str(more)})
    assert started.status_code == 202 and started.json()["state"] == "running"
    job = client.app.state.web.jobs.wait(started.json()["id"], 60)
    answer = client.get(f"/api/v1/ingest/{job.id}").json()
    assert answer["state"] == "done" and answer["report"]["added"] == 5
    assert [(Path(f["path"]).name, bool(f["reason"])) for f in answer["report"]["failed"]] == [("broken.jpg", True)]
    assert answer["total"] == answer["done"] > 0
    assert [j["id"] for j in client.get("/api/v1/ingest").json()] == [job.id]
    assert client.get("/api/v1/status").json()["files_by_kind"]["image"] == 10


def test_an_ingest_job_can_make_the_thumbnails(client: TestClient, tmp_path: Path) -> None:
    more = tmp_path / "more"
    for seed in range(3):
        make_image(more / f"pic{seed}.png", 40 + seed, (400, 300))
    job = client.post("/api/v1/ingest", json={"folder": str(more), "thumbnails": True}).json()
    done = client.app.state.web.jobs.wait(job["id"], 60)
    assert (done.state, done.phase, done.done, done.total) == ("done", "thumbnails", 3, 3)
    root = client.app.state.web.thumbnails.root
    made = sorted(path.name.split("-")[0] for path in root.glob("*/*.jpg"))
    assert made == ["grid", "grid", "grid"]
    assert all(max(Image.open(path).size) == SIZES["grid"] for path in root.glob("*/*.jpg"))


def test_ingest_job_refuses_a_missing_folder_and_unknown_jobs(client: TestClient, tmp_path: Path) -> None:
    missing = client.post("/api/v1/ingest", json={"folder": str(tmp_path / "nope")})
    assert missing.status_code == 400 and "folder not found" in missing.json()["error"]
    assert client.get("/api/v1/ingest/nosuchjob").status_code == 400
    assert client.post("/api/v1/ingest", json={"folder": "x", "extra": 1}).status_code == 422


class SlowEngine:
    """Stands in for an Engine whose ingest takes long: it reports progress until told to stop."""

    def __init__(self) -> None:
        self.started = threading.Event()

    def __enter__(self) -> SlowEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def ingest(self, folder: str, progress, captions=()):
        self.started.set()
        for done in range(10_000):
            progress("embedding", done, 10_000)
            time.sleep(0.005)
        raise AssertionError("never cancelled")


def test_a_cancelled_job_stops_and_only_one_runs_at_once(tmp_path: Path) -> None:
    slow = SlowEngine()
    jobs = IngestJobs(lambda: slow)
    job = jobs.start(str(tmp_path))
    assert slow.started.wait(5)
    with pytest.raises(Exception, match="already running"):
        jobs.start(str(tmp_path))
    deadline = time.monotonic() + 10
    while job.done < 3 and time.monotonic() < deadline:  # progress is reported while it runs
        time.sleep(0.01)
    assert (job.phase, job.total) == ("embedding", 10_000)
    jobs.cancel(job.id)
    assert jobs.wait(job.id, 10).state == "cancelled"
    assert job.finished is not None and 3 <= job.done < 10_000


# -- bad input: 4xx with a clear message ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"q": "dog", "kind": "pictures"}, 422, "query.kind"),
        ({"q": "dog", "k": "0"}, 422, "query.k"),
        ({"q": "dog", "k": "10000000000000000000000000000000"}, 422, "query.k"),
        ({"q": "dog", "min_score": "nan"}, 422, "query.min_score"),
        ({"q": "dog", "weight": "caption=nan"}, 400, "NAME=W"),
        ({"q": "dog", "weight": "colour=1"}, 400, "NAME=W"),
        ({"q": "dog", "since": "yesterday"}, 400, "ISO date"),
        ({"q": "dog", "since": "0001-01-01"}, 400, "ISO date"),
        ({"q": "dog", "ext": "../x"}, 400, "ext takes"),
        ({"q": '"unterminated'}, 400, "quote"),
        ({"q": "dog\x00"}, 400, "NUL"),
        ({"q": "dog", "diverse": "true", "cutoff": "gap"}, 200, ""),
        ({}, 400, "give q"),
        ({"q": "dog", "model": "fake:32"}, 400, "refusing to use"),
        ({"q": "image:/etc/passwd"}, 400, "upload or an asset id"),
        ({"q": "dog + image:/etc/hostname"}, 400, "upload or an asset id"),
    ],
)
def test_bad_searches_are_4xx_with_a_message(client: TestClient, params: dict, status: int, message: str) -> None:
    answer = client.get("/api/v1/search", params=params)
    assert answer.status_code == status, answer.text
    if message:
        assert message in answer.json()["error"]
        assert answer.json()["exit_code"] in (1, 2)


def test_keyword_search_without_words_keeps_its_message(client: TestClient, library: Path) -> None:
    upload = {"image": ("q.jpg", (library / "dog.jpg").read_bytes(), "image/jpeg")}
    answer = client.post("/api/v1/search/image", files=upload, params={"mode": "keyword"})
    assert answer.status_code == 400 and "keyword mode needs query text" in answer.json()["error"]
    assert answer.json()["exit_code"] == 2


def test_nothing_indexed_is_a_conflict(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "empty", model="fake:16") as empty:
        app = create_app(empty)
        client = TestClient(app, base_url="http://127.0.0.1", headers={TOKEN_HEADER: app.state.web.auth.token})
        answer = client.get("/api/v1/search", params={"q": "dog"})
        assert answer.status_code == 409 and "nothing is indexed" in answer.json()["error"]
