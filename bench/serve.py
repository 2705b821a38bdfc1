#!/usr/bin/env python3
"""The web app's latency: search over HTTP against ``Engine.search`` in the same run, thumbnails, page load.

Run from the repository root::

    source scripts/venv.sh && source scripts/fixture-env.sh && python bench/serve.py
    python bench/serve.py --json            # one JSON object on stdout instead of the table
    python bench/serve.py --queries 200     # more samples per side

The DEV photos and their captions are ingested once into a temporary home with the fixture model; the real
server (uvicorn, :class:`mmsearch.web.server.WebServer`) then serves that engine, warmed up with both towers,
on loopback in this process. Measured:

* search: ``GET /api/v1/search?q=...&k=10`` over one keep-alive connection against ``engine.search(text,
  k=10)`` on the same engine, alternating per query (which goes first swaps each time), each on a DISTINCT
  DEV caption so every query really encodes its text (a repeated text skips the model); target: HTTP p50 and
  p99 <= 1.2 x the engine's + 2 ms;
* the first image query (an upload) after start: the model's image tower is loaded at start, not now;
* thumbnails: the first request of a grid thumbnail (made now from the photo) and the same again (cached);
* page load: a headless Chromium (when installed) opens ``/?q=...&k=100`` and waits until every thumbnail in
  view has loaded; milliseconds from navigation start, with an empty thumbnail cache and then a warm one.

Nothing is written into the repository; the home lives under ``$TMPDIR``.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

from _common import (
    DEV_CAPTIONS,
    DEV_IMAGES,
    FIXTURE_MODEL,
    CpuMonitor,
    Row,
    emit,
    log,
    machine_facts,
    quiet_row,
    repo_path,
    sqlite_url,
    use_offline_fixture,
)

TOKEN_HEADER = "X-Mmsearch-Token"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Http:
    """One keep-alive connection to the server, as an API client would hold."""

    def __init__(self, url: str, token: str) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=120)
        self.headers = {TOKEN_HEADER: token}

    def get(self, path: str) -> tuple[int, bytes]:
        self.connection.request("GET", path, headers=self.headers)
        response = self.connection.getresponse()
        return response.status, response.read()

    def post(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
        self.connection.request("POST", path, body=body, headers={**self.headers, "Content-Type": content_type})
        response = self.connection.getresponse()
        return response.status, response.read()


def captions(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as handle:
        return list(dict.fromkeys(row["caption"].strip() for row in csv.DictReader(handle, delimiter="\t")))


def time_searches(engine: Any, http: Http, texts: list[str], warmup: int) -> tuple[list[float], list[float]]:
    """Seconds per search over HTTP and in the engine, alternating, on distinct texts (even: HTTP, odd: engine)."""
    served, direct = [], []
    for number, (over_http, in_engine) in enumerate(zip(texts[0::2], texts[1::2], strict=False)):

        def one_http(text: str = over_http) -> float:
            started = time.perf_counter()
            status, body = http.get("/api/v1/search?" + urllib.parse.urlencode({"q": text, "k": 10}))
            elapsed = time.perf_counter() - started
            assert status == 200 and json.loads(body)["hits"], body[:200]
            return elapsed

        def one_engine(text: str = in_engine) -> float:
            started = time.perf_counter()
            assert engine.search(text, k=10)
            return time.perf_counter() - started

        first, second = (one_http, one_engine) if number % 2 == 0 else (one_engine, one_http)
        a, b = first(), second()
        if number >= warmup:
            http_s, engine_s = (a, b) if first is one_http else (b, a)
            served.append(http_s)
            direct.append(engine_s)
    return served, direct


def first_image_query(http: Http, photo: Path) -> float:
    boundary = "benchboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{photo.name}"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + photo.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    started = time.perf_counter()
    status, answer = http.post("/api/v1/search/image?k=10", body, f"multipart/form-data; boundary={boundary}")
    elapsed = time.perf_counter() - started
    assert status == 200 and json.loads(answer)["hits"][0]["path"] == str(photo), answer[:200]
    return elapsed


def time_thumbnails(http: Http, ids: list[int]) -> tuple[list[float], list[float]]:
    first, cached = [], []
    for rounds in (first, cached):
        for asset_id in ids:
            started = time.perf_counter()
            status, body = http.get(f"/api/v1/assets/{asset_id}/thumbnail?size=grid")
            rounds.append(time.perf_counter() - started)
            assert status == 200 and body[:2] == b"\xff\xd8"
    return first, cached


PAGE_READY = """
const done = arguments[arguments.length - 1];
function check() {
  const state = document.getElementById('state').className;
  const images = [...document.querySelectorAll('#results .card img')]
    .filter(i => i.getBoundingClientRect().top < window.innerHeight);
  if (state === 'done' && images.length && images.every(i => i.complete && i.naturalWidth)) {
    done({ms: performance.now(), cards: document.querySelectorAll('#results .card').length, inView: images.length});
  } else { setTimeout(check, 5); }
}
check();
"""


def page_loads(server: Any, query: str, runs: int) -> list[dict[str, Any]] | None:
    """Page load to the first thumbnails in Chromium: the first with an empty thumbnail cache, then warm ones."""
    binary, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (binary and driver_path):
        log("chromium/chromedriver not found: page load not measured")
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(argument)
    browser = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        browser.set_script_timeout(120)
        browser.get(server.signin_url())
        shutil.rmtree(server.service.thumbnails.root, ignore_errors=True)
        url = f"{server.url}/?" + urllib.parse.urlencode({"q": query, "k": 100})
        results = []
        for _ in range(runs):
            browser.execute_cdp_cmd("Network.clearBrowserCache", {})
            browser.get(url)
            results.append(browser.execute_async_script(PAGE_READY))
        return results
    finally:
        browser.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", default=DEV_IMAGES)
    parser.add_argument("--captions", default=DEV_CAPTIONS)
    parser.add_argument("--queries", type=int, default=150, help="timed searches per side")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--thumbnails", type=int, default=50)
    parser.add_argument("--page-runs", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    use_offline_fixture()
    from mmsearch import Engine
    from mmsearch.web.server import WebServer

    images, caption_file = repo_path(args.images), repo_path(args.captions)
    texts = captions(caption_file)
    needed = 2 * (args.queries + args.warmup)
    if len(texts) < needed + 1:
        raise SystemExit(f"need {needed + 1} distinct captions, {caption_file} has {len(texts)}")
    with tempfile.TemporaryDirectory(prefix="mmsearch-bench-serve-") as tmp:
        home = Path(tmp)
        with Engine.open(home, model=FIXTURE_MODEL, device="cpu", db_url=sqlite_url(home)) as engine:
            log(f"ingesting {images} ...")
            engine.ingest(images, captions=[caption_file])
            started = time.perf_counter()
            engine.warm_up(images=True)
            warm_s = time.perf_counter() - started
            server = WebServer(engine)
            server.start()
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            while not server.started:
                time.sleep(0.01)
            try:
                payload = measure(engine, server, images, texts, args)
            finally:
                server.shutdown()
                thread.join(15)
                server.close()
    payload["warm_up_s"] = round(warm_s, 3)
    emit(rows_of(payload), {**payload, "machine": machine_facts("cpu")}, args.json)


def measure(engine: Any, server: Any, images: Path, texts: list[str], args: argparse.Namespace) -> dict[str, Any]:
    http = Http(server.url, server.token)
    photos = sorted(images.glob("*.jpg"))
    log("first image query ...")
    image_s = first_image_query(http, photos[0].resolve())
    log(f"timing {args.queries} searches per side ...")
    with CpuMonitor() as monitor:
        served, direct = time_searches(engine, http, texts[: 2 * (args.queries + args.warmup)], args.warmup)
    _, body = http.get("/api/v1/search?" + urllib.parse.urlencode({"q": texts[-1], "k": args.thumbnails}))
    ids = [hit["id"] for hit in json.loads(body)["hits"]]
    log(f"timing {len(ids)} thumbnails ...")
    first, cached = time_thumbnails(http, ids)
    log("page loads in Chromium ...")
    pages = page_loads(server, "a dog runs on the grass", args.page_runs)
    return {
        "http_ms": summary(served),
        "engine_ms": summary(direct),
        "first_image_query_ms": round(image_s * 1000, 1),
        "thumbnail_first_ms": summary(first),
        "thumbnail_cached_ms": summary(cached),
        "page_loads": pages,
        "cpu": monitor.to_dict(),
    }


def summary(seconds: list[float]) -> dict[str, float]:
    values = [s * 1000 for s in seconds]
    return {
        "n": len(values),
        "p50": round(statistics.median(values), 2),
        "p99": round(percentile(values, 0.99), 2),
        "mean": round(statistics.fmean(values), 2),
    }


def rows_of(payload: dict[str, Any]) -> list[Row]:
    http, engine = payload["http_ms"], payload["engine_ms"]
    rows = []
    for stat in ("p50", "p99"):
        limit = 1.2 * engine[stat] + 2
        rows.append(Row(f"search over HTTP {stat}", http[stat], "ms", f"<= {limit:.2f} ms", http[stat] <= limit))
        rows.append(Row(f"Engine.search {stat}", engine[stat], "ms"))
    rows.append(Row("first image query (upload) after start", payload["first_image_query_ms"], "ms"))
    rows.append(Row("warm-up with both towers", payload["warm_up_s"], "s"))
    rows.append(
        Row(
            "thumbnail, first request p50 / p99",
            f"{payload['thumbnail_first_ms']['p50']} / {payload['thumbnail_first_ms']['p99']}",
            "ms",
        )
    )
    rows.append(
        Row(
            "thumbnail, cached p50 / p99",
            f"{payload['thumbnail_cached_ms']['p50']} / {payload['thumbnail_cached_ms']['p99']}",
            "ms",
        )
    )
    for number, page in enumerate(payload["page_loads"] or []):
        label = "cold thumbnail cache" if number == 0 else "thumbnails cached"
        rows.append(Row(f"page load to first thumbnails, 100 results ({label})", round(page["ms"], 1), "ms"))
    rows.append(quiet_row("the timed searches", [payload["cpu"].get("other_cpu_share")]))
    return rows


if __name__ == "__main__":
    sys.exit(main())
