"""The page in a real headless Chromium (Debian's chromium and chromium-driver, through Selenium), served by the
real uvicorn server over the fixture model's DEV library plus a recording with a transcript.

Screenshots of the main states are saved under ``test-artifacts/web/`` (git-ignored; ``MMSEARCH_ARTIFACTS``
moves it) for people to look at.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DEV, FIXTURE_MODEL, require_fixture_model
from tests.web_library import TRANSCRIPT, running, write_wav

pytestmark = pytest.mark.integration

ARTIFACTS = Path(os.environ.get("MMSEARCH_ARTIFACTS") or Path(__file__).resolve().parents[2] / "test-artifacts") / "web"
WAIT_S = 60


def browser_or_skip():
    """A headless Chromium, or a skip (a failure when scripts/chromium.sh found Chromium: MMSEARCH_REQUIRE_CHROMIUM)."""
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    required = os.environ.get("MMSEARCH_REQUIRE_CHROMIUM") == "1"
    if not (binary and driver):
        if required:
            pytest.fail("MMSEARCH_REQUIRE_CHROMIUM=1 but chromium or chromedriver is not on PATH")
        pytest.skip("chromium and chromedriver not found (scripts/chromium.sh installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--disable-dev-shm-usage", "--window-size=1280,900", "--mute-audio"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium refuses to run as root inside its sandbox
    try:
        return webdriver.Chrome(options=options, service=Service(driver))
    except WebDriverException as exc:
        if required:
            raise
        pytest.skip(f"Chromium did not start: {exc.msg}")


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Iterator[tuple]:
    """The DEV photos with their captions, and one recording whose transcript (a sidecar) has two segments."""
    require_fixture_model()
    from mmsearch import Engine

    recordings = tmp_path_factory.mktemp("recordings")
    write_wav(recordings / "harbour_tour.wav")
    (recordings / "harbour_tour.srt").write_text(TRANSCRIPT)
    home = tmp_path_factory.mktemp("web-home")
    with Engine.open(home, model=FIXTURE_MODEL, device="cpu") as engine:
        engine.ingest(DEV / "images", captions=[DEV / "captions.tsv"])
        engine.ingest(recordings)
        yield engine, recordings


@pytest.fixture(scope="module")
def server(library):
    from mmsearch.web.server import WebServer

    engine, _ = library
    assert engine.warm_up()
    with running(WebServer(engine)) as served:
        yield served


@pytest.fixture(scope="module")
def driver(server):
    browser = browser_or_skip()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture
def page(driver, server):
    """The browser, signed in (a fresh one-time link), on an empty search page at desktop size."""
    driver.set_window_size(1280, 900)
    driver.get(server.signin_url())
    wait_for(driver, lambda d: d.find_elements("id", "q"))
    return driver


def wait_for(driver, condition, timeout: float = WAIT_S):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def shot(driver, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def search_for(driver, text: str) -> None:
    box = driver.find_element("id", "q")
    box.clear()
    box.send_keys(text)
    driver.find_element("id", "search-button").click()
    settled(driver)


def settled(driver) -> str:
    """The state line once the search answered (results, empty or error)."""
    wait_for(driver, lambda d: d.find_element("id", "state").get_attribute("class") in ("done", "empty", "error"))
    return driver.find_element("id", "state").text


def names(driver) -> list[str]:
    script = "return [...document.querySelectorAll('#results .card .name')].map(n => n.textContent)"
    return driver.execute_script(script)


def thumbnails_loaded(driver) -> bool:
    script = (  # the thumbnails in view (the rest load lazily, on scrolling)
        "return [...document.querySelectorAll('#results .card img')]"
        ".filter(i => i.getBoundingClientRect().top < window.innerHeight).map(i => i.complete && i.naturalWidth)"
    )
    widths = driver.execute_script(script)
    return bool(widths) and all(widths)


def dev_caption(number: int) -> tuple[str, str]:
    with (DEV / "captions.tsv").open(encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle, delimiter="\t") if row["n"] == "0"]
    row = sorted(rows, key=lambda r: r["image"])[number]
    return row["image"], row["caption"]


# -- the tests -----------------------------------------------------------------------------------------------------


def test_sign_in_is_required_without_the_cookie(driver, server) -> None:
    driver.delete_all_cookies()
    driver.get(server.url + "/")
    assert driver.find_elements("id", "signin-required")
    assert not driver.find_elements("id", "q")
    shot(driver, "01-sign-in-required")
    driver.get(server.url + "/signin?code=not-a-code")
    assert "spent or unknown" in driver.find_element("id", "signin-required").text


def test_a_text_search_shows_the_photo_of_a_dev_caption(page) -> None:
    shot(page, "02-welcome")
    photo, caption = dev_caption(10)
    search_for(page, caption)
    assert photo in names(page)
    wait_for(page, thumbnails_loaded)
    assert "q=" in page.current_url
    shot(page, "03-text-results")


def test_search_by_uploading_a_photo(page) -> None:
    photo, _ = dev_caption(20)
    page.find_element("id", "image-input").send_keys(str(DEV / "images" / photo))
    settled(page)
    assert names(page)[0] == photo
    assert page.find_element("id", "query-image").is_displayed()
    wait_for(page, thumbnails_loaded)
    shot(page, "04-upload-results")


def test_play_an_audio_hit_from_its_segment(page) -> None:
    page.get(page.current_url.split("?")[0] + "?q=big+ships+arrive+at+noon&kind=transcript")
    settled(page)
    card = page.find_element("css selector", '#results .card[data-kind="audio"]')
    assert "the big ships arrive at noon" in card.text
    card.find_element("css selector", ".play-segment").click()
    audio = card.find_element("css selector", "audio")
    wait_for(page, lambda d: d.execute_script("return arguments[0].currentTime > 0", audio))
    now = page.execute_script("arguments[0].pause(); return arguments[0].currentTime", audio)
    assert 5.0 <= now < 6.5  # the segment starts at 5.0 s
    shot(page, "05-audio-hit")


def test_filters_narrow_the_results_and_live_in_the_url(page, library) -> None:
    _, recordings = library
    search_for(page, "a dog")
    assert all(name.endswith(".jpg") for name in names(page))
    page.find_element("css selector", "#filters summary").click()
    page.find_element("id", "kind").send_keys("anything")
    settled(page)
    folder = page.find_element("id", "path")
    folder.send_keys(str(recordings))
    page.find_element("id", "apply-filters").click()
    wait_for(page, lambda d: names(d) == ["harbour_tour.wav"])
    assert "kind=any" in page.current_url and "path=" in page.current_url
    shot(page, "06-filtered")
    page.find_element("id", "ext").send_keys("png")
    page.find_element("id", "apply-filters").click()
    assert settled(page).startswith("No results")
    shot(page, "07-empty")


def test_more_like_this_and_the_back_button(page) -> None:
    _, caption = dev_caption(30)
    search_for(page, caption)
    first = page.find_element("css selector", "#results .card")
    photo = first.find_element("css selector", ".name").text
    first.find_element("css selector", ".more-like").click()
    wait_for(page, lambda d: "like=" in d.current_url)
    settled(page)
    assert names(page)[0] == photo  # the photo itself is the most similar
    assert page.find_element("id", "state").text.startswith("More like #")
    wait_for(page, thumbnails_loaded)
    shot(page, "08-more-like-this")
    page.back()
    wait_for(page, lambda d: "like=" not in d.current_url)
    settled(page)
    assert page.find_element("id", "q").get_attribute("value") == caption
    assert names(page)[0] == photo


def test_lightbox_explains_a_hit_and_keys_navigate(page) -> None:
    from selenium.webdriver.common.keys import Keys

    _, caption = dev_caption(40)
    search_for(page, caption)
    page.find_element("css selector", "#results .card .details").click()
    box = page.find_element("id", "lightbox")
    wait_for(page, lambda d: box.is_displayed() and "Captions" in box.text)
    assert "Why it ranked" in box.text and "caption" in box.text
    shot(page, "09-lightbox")
    page.find_element("tag name", "body").send_keys(Keys.ARROW_RIGHT)
    wait_for(page, lambda d: d.find_element("id", "lightbox-title").text == names(d)[1])
    page.find_element("tag name", "body").send_keys(Keys.ESCAPE)
    wait_for(page, lambda d: not box.is_displayed())
    focused = page.switch_to.active_element
    assert focused.get_attribute("data-index") == "1"
    focused.send_keys(Keys.ARROW_RIGHT)
    assert page.switch_to.active_element.get_attribute("data-index") == "2"


def test_a_search_in_flight_shows_the_loading_state(page) -> None:
    page.execute_cdp_cmd("Network.enable", {})
    slow = {"offline": False, "latency": 1500, "downloadThroughput": -1, "uploadThroughput": -1}
    page.execute_cdp_cmd("Network.emulateNetworkConditions", slow)
    try:
        box = page.find_element("id", "q")
        box.send_keys("a dog in the snow")
        page.find_element("id", "search-button").click()
        state = page.find_element("id", "state")
        assert state.get_attribute("class") == "loading" and state.text == "Searching…"
        assert page.find_element("id", "results").get_attribute("aria-busy") == "true"
        shot(page, "12-loading")
    finally:
        fast = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
        page.execute_cdp_cmd("Network.emulateNetworkConditions", fast)
    assert settled(page).endswith("results")


def test_errors_are_shown(page) -> None:
    search_for(page, '"unterminated')
    state = page.find_element("id", "state")
    assert state.get_attribute("class") == "error" and "quote" in state.text
    shot(page, "10-error")


def test_usable_at_360_pixels(page) -> None:
    page.set_window_size(360, 740)
    _, caption = dev_caption(50)
    search_for(page, caption)
    wait_for(page, thumbnails_loaded)
    width = page.execute_script("return document.documentElement.scrollWidth")
    viewport = page.execute_script("return window.innerWidth")
    assert width <= viewport  # nothing sticks out sideways
    assert page.find_element("id", "search-button").is_displayed()
    shot(page, "11-mobile")


def test_the_page_breaks_no_content_security_rule(page) -> None:
    _, caption = dev_caption(60)
    search_for(page, caption)
    page.find_element("css selector", "#results .card .details").click()
    wait_for(page, lambda d: "Captions" in d.find_element("id", "lightbox").text)
    messages = [entry["message"] for entry in page.get_log("browser")]
    assert not [m for m in messages if "Content Security Policy" in m or "Refused to" in m], messages
    assert not [m for m in messages if "Uncaught" in m], messages
