"""The web app's security list, one test per item: credentials before bodies, one-time sign-in and its cookie,
cross-site refusals, Host checks, CSP, assets by id only, uploads instead of server paths, bounded bodies, JSON
depth, time and uploads; FIFOs never hang a request; the token never reaches a log."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from mmsearch import Engine
from mmsearch.web.app import create_app
from mmsearch.web.security import (
    CONTENT_SECURITY_POLICY,
    REQUEST_HEADER,
    SESSION_COOKIE,
    TOKEN_HEADER,
    Auth,
    Guard,
    Limits,
)
from tests.web_library import build_library

LOCAL = "http://127.0.0.1"


@pytest.fixture
def library(tmp_path: Path) -> Path:
    return build_library(tmp_path / "library")


@pytest.fixture
def engine(tmp_path: Path, library: Path) -> Iterator[Engine]:
    with Engine.open(tmp_path / "home", model="fake:16", workers=1, batch_size=4) as opened:
        opened.ingest(library)
        yield opened


@pytest.fixture
def app(engine: Engine):
    return create_app(engine, limits=Limits(max_body=4096, max_upload=200_000, body_timeout_s=0.5), url=LOCAL)


def token_client(app) -> TestClient:
    return TestClient(app, base_url=LOCAL, headers={TOKEN_HEADER: app.state.web.auth.token})


def signed_in(app) -> TestClient:
    browser = TestClient(app, base_url=LOCAL)
    assert browser.get("/signin", params={"code": app.state.web.auth.new_code()}).status_code == 200
    return browser


def an_id(app, kind: str = "image") -> int:
    answer = token_client(app).get("/api/v1/search", params={"q": "a", "kind": "any", "k": 20})
    return next(hit["id"] for hit in answer.json()["hits"] if hit["kind"] == kind)


# -- credentials --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/v1/search?q=dog", "/api/v1/status", "/api/v1/health", "/api/v1/assets/1", "/api/v1/ingest"]
)
def test_the_api_needs_the_token_or_a_session(app, path: str) -> None:
    anonymous = TestClient(app, base_url=LOCAL)
    assert anonymous.get(path).status_code == 401
    assert anonymous.get(path, headers={TOKEN_HEADER: "wrong"}).status_code == 401
    forged = TestClient(app, base_url=LOCAL, cookies={SESSION_COOKIE: "forged"})
    assert forged.get(path).status_code == 401
    assert token_client(app).get(path).status_code == 200


def test_thumbnails_and_media_need_credentials_too(app) -> None:
    anonymous = TestClient(app, base_url=LOCAL)
    image = an_id(app)
    assert anonymous.get(f"/api/v1/assets/{image}/thumbnail").status_code == 401
    assert anonymous.get(f"/api/v1/assets/{image}/media").status_code == 401
    assert signed_in(app).get(f"/api/v1/assets/{image}/thumbnail").status_code == 200


def test_the_page_asks_to_sign_in_without_the_cookie(app) -> None:
    page = TestClient(app, base_url=LOCAL).get("/")
    assert page.status_code == 401 and 'id="signin-required"' in page.text
    assert "app.js" not in page.text


def test_a_sign_in_link_works_once_and_sets_a_strict_httponly_cookie(app) -> None:
    code = app.state.web.auth.new_code()
    browser = TestClient(app, base_url=LOCAL)
    answer = browser.get("/signin", params={"code": code})
    assert answer.status_code == 200
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert app.state.web.auth.token not in cookie and code not in cookie
    assert browser.get("/").status_code == 200 and "app.js" in browser.get("/").text
    assert browser.get("/api/v1/status").status_code == 200
    again = TestClient(app, base_url=LOCAL).get("/signin", params={"code": code})
    assert again.status_code == 403 and SESSION_COOKIE not in again.headers.get("set-cookie", "")
    assert TestClient(app, base_url=LOCAL).get("/signin", params={"code": "guess"}).status_code == 403


def test_sign_in_links_are_given_to_token_holders_only(app) -> None:
    assert TestClient(app, base_url=LOCAL).post("/api/v1/signin-links").status_code == 401
    link = token_client(app).post("/api/v1/signin-links").json()["url"]
    assert link.startswith(f"{LOCAL}/signin?code=")
    assert TestClient(app, base_url=LOCAL).get(link.removeprefix(LOCAL)).status_code == 200


# -- cross-site requests --------------------------------------------------------------------------------------


def test_state_changing_requests_with_the_cookie_need_the_page_header(app, tmp_path: Path) -> None:
    browser = signed_in(app)
    body = {"folder": str(tmp_path)}
    forged = browser.post("/api/v1/ingest", json=body)
    assert forged.status_code == 403 and REQUEST_HEADER in forged.json()["error"]
    foreign = browser.post("/api/v1/ingest", json=body, headers={REQUEST_HEADER: "1", "Origin": "http://evil.test"})
    assert foreign.status_code == 403 and "Origin" in foreign.json()["error"]
    assert not app.state.web.jobs.all()  # neither started a job
    own = browser.post("/api/v1/ingest", json={"folder": str(tmp_path / "nope")}, headers={REQUEST_HEADER: "1"})
    assert own.status_code == 400  # got through the guard: refused by the route for its own reason
    same = browser.post("/api/v1/ingest", json={"folder": "/nope"}, headers={REQUEST_HEADER: "1", "Origin": LOCAL})
    assert same.status_code == 400


def test_a_foreign_host_header_is_refused(app) -> None:
    rebound = TestClient(app, base_url="http://attacker.test", headers={TOKEN_HEADER: app.state.web.auth.token})
    assert rebound.get("/api/v1/status").status_code == 421
    assert TestClient(app, base_url="http://localhost:8000").get("/static/app.js").status_code == 200


def test_any_host_is_accepted_when_bound_beyond_loopback(engine: Engine) -> None:
    exposed = create_app(engine, allowed_hosts=None)
    client = TestClient(exposed, base_url="http://photos.example", headers={TOKEN_HEADER: exposed.state.web.auth.token})
    assert client.get("/api/v1/status").status_code == 200
    assert TestClient(exposed, base_url="http://photos.example").get("/api/v1/status").status_code == 401


@pytest.mark.parametrize("path", ["/", "/api/v1/status", "/api/v1/nothing", "/static/app.js", "/signin"])
def test_every_response_carries_a_strict_csp(app, path: str) -> None:
    for client in (TestClient(app, base_url=LOCAL), signed_in(app)):
        headers = client.get(path).headers
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY and "script-src 'self'" in CONTENT_SECURITY_POLICY
        assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"


# -- assets by id only; image queries are uploads ---------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/assets/..%2F..%2F..%2Fetc%2Fpasswd/media",
        "/api/v1/assets/%2Fetc%2Fpasswd/media",
        "/api/v1/assets/-1/media",
        "/api/v1/assets/0/thumbnail",
        "/static/../../../../etc/passwd",
        "/static/%2e%2e/%2e%2e/etc/passwd",
    ],
)
def test_no_path_from_a_request_reaches_the_disk(app, path: str) -> None:
    answer = token_client(app).get(path)
    assert answer.status_code in (404, 422)
    assert b"root:" not in answer.content


def test_the_api_takes_no_server_path_for_an_image(app) -> None:
    client = token_client(app)
    for params in ({"image": "/etc/passwd"}, {"q": "image:/etc/passwd"}, {"q": "image:/dev/zero + dog"}):
        answer = client.get("/api/v1/search", params=params)
        assert answer.status_code == 400, answer.text
    schema = client.get("/api/v1/openapi.json").json()
    parameters = {p["name"] for op in schema["paths"].values() for m in op.values() for p in m.get("parameters", [])}
    assert "image" not in parameters  # an image comes as an upload (multipart), or by asset id


def test_an_indexed_file_replaced_by_a_fifo_does_not_hang(app, library: Path) -> None:
    talk, image = an_id(app, "audio"), an_id(app, "image")
    path = token_client(app).get(f"/api/v1/assets/{image}").json()["path"]
    for victim in (library / "talk.wav", Path(path)):
        victim.unlink()
        os.mkfifo(victim)
    answers: dict[str, int] = {}

    def ask() -> None:
        client = token_client(app)
        answers["media"] = client.get(f"/api/v1/assets/{talk}/media").status_code
        answers["thumbnail"] = client.get(f"/api/v1/assets/{image}/thumbnail").status_code
        answers["like"] = client.get("/api/v1/search", params={"like": image}).status_code

    worker = threading.Thread(target=ask, daemon=True)
    worker.start()
    worker.join(20)
    assert not worker.is_alive(), "a request hung on a FIFO"
    assert answers == {"media": 422, "thumbnail": 422, "like": 422}


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (the pixel data is a stub: never decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def jpeg(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(out, format="JPEG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (b"", 400, "empty"),
        (b"#!/bin/sh\necho not an image\n", 400, "not an image"),
        (png_header(50_000, 50_000), 400, "than the limit"),  # a decompression bomb's header
        (png_header(30_000, 1), 400, "to 1 are refused"),  # the 169-byte PNG that took 7 GB
        (jpeg((300, 4)), 400, "to 1 are refused"),
        (b"\xff\xd8" + b"\0" * 300_000, 413, "over the limit of 200,000 bytes"),
    ],
)
def test_uploads_are_checked_before_decoding(app, data: bytes, status: int, message: str) -> None:
    answer = token_client(app).post("/api/v1/search/image", files={"image": ("q.png", data, "image/png")})
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]


def test_a_plain_upload_is_searched(app) -> None:
    answer = token_client(app).post("/api/v1/search/image", files={"image": ("q.jpg", jpeg((64, 48)), "image/jpeg")})
    assert answer.status_code == 200 and answer.json()["hits"]


# -- bodies: credentials first, then bounded in size, depth and time -------------------------------------------


def run_asgi(app, method: str, path: str, headers: dict[str, str], receive) -> tuple[int, bytes]:
    """Call ``app`` as a server would; returns the status and body it answered."""
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in {"host": "127.0.0.1", **headers}.items()],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


async def never_read() -> dict:
    raise AssertionError("the body was read")


def test_credentials_are_checked_before_the_body_is_read(app) -> None:
    for length in ("-1", "200000000", "5"):
        status, body = run_asgi(app, "POST", "/api/v1/ingest", {"content-length": length}, never_read)
        assert status == 401 and b"sign in first" in body


def test_a_bad_or_huge_content_length_is_refused_without_reading(app) -> None:
    token = {TOKEN_HEADER: app.state.web.auth.token}
    assert run_asgi(app, "POST", "/api/v1/ingest", {**token, "content-length": "-1"}, never_read)[0] == 400
    assert run_asgi(app, "POST", "/api/v1/ingest", {**token, "content-length": "1e9"}, never_read)[0] == 400
    assert run_asgi(app, "POST", "/api/v1/ingest", {**token, "content-length": "200000000"}, never_read)[0] == 413


def chunks(*parts: bytes, delay: float = 0.0):
    queue = list(parts)

    async def receive() -> dict:
        if delay:
            await asyncio.sleep(delay)
        if not queue:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": queue.pop(0), "more_body": bool(queue)}

    return receive


def test_a_streamed_body_is_cut_at_the_limit(app) -> None:
    headers = {TOKEN_HEADER: app.state.web.auth.token, "transfer-encoding": "chunked"}
    status, body = run_asgi(app, "POST", "/api/v1/ingest", headers, chunks(*[b"x" * 1000] * 10))
    assert status == 413 and b"over the limit of 4,096 bytes" in body


def test_a_body_that_does_not_arrive_in_time_is_408(app) -> None:
    headers = {TOKEN_HEADER: app.state.web.auth.token, "content-length": "20"}
    status, _ = run_asgi(app, "POST", "/api/v1/ingest", headers, chunks(b"{", b"}", delay=0.4))
    assert status == 408


def test_deeply_nested_json_is_refused(app) -> None:
    client = token_client(app)
    deep = client.post(
        "/api/v1/ingest", content=b"[" * 2000 + b"]" * 2000, headers={"content-type": "application/json"}
    )
    assert deep.status_code == 400 and "nested deeper" in deep.json()["error"]
    wrong = client.post("/api/v1/ingest", content=b'{"folder": ', headers={"content-type": "application/json"})
    assert wrong.status_code == 422


def test_the_engine_wait_is_bounded(engine: Engine) -> None:
    app = create_app(engine, limits=Limits(engine_wait_s=0.2))
    service = app.state.web
    service._lock.acquire()  # another request holds the engine
    try:
        answer = token_client(app).get("/api/v1/search", params={"q": "dog"})
    finally:
        service._lock.release()
    assert answer.status_code == 503 and "busy" in answer.json()["error"]


def test_the_guard_answers_only_http(engine: Engine) -> None:
    calls: list[str] = []

    async def inner(scope, receive, send) -> None:
        calls.append(scope["type"])

    guard = Guard(inner, Auth(), Limits(), None)
    asyncio.run(guard({"type": "lifespan"}, never_read, None))
    assert calls == ["lifespan"]


# -- logs ----------------------------------------------------------------------------------------------------------


def test_neither_token_nor_sign_in_code_reaches_a_log(app, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    code = app.state.web.auth.new_code()
    browser = TestClient(app, base_url=LOCAL)
    browser.get("/signin", params={"code": code})
    token_client(app).get("/api/v1/search", params={"q": "dog"})
    token_client(app).get("/api/v1/search", params={"kind": "nope"})
    served = [record for record in caplog.records if not record.name.startswith("httpx")]  # the test's own client
    assert served  # the service did log (asyncio, the app): what it logged must not hold secrets
    text = "".join(f"{record.getMessage()} {record.args}" for record in served)
    assert app.state.web.auth.token not in text and code not in text
