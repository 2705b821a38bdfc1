"""A small library for the web app's tests: captioned photos, a rotated photo, an audio file with a transcript."""

from __future__ import annotations

import threading
import time
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from mmsearch.web.server import WebServer
from tests.conftest import make_image

TRANSCRIPT = (
    "1\n00:00:01,000 --> 00:00:03,500\nwelcome to the harbour tour today\n\n"
    "2\n00:00:05,000 --> 00:00:08,000\nthe big ships arrive at noon every day\n"
)


def write_wav(path: Path, seconds: float = 10.0, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    samples = (rng.standard_normal(int(8000 * seconds)) * 800).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(8000)
        handle.writeframes(samples.tobytes())
    return path


def write_rotated(path: Path) -> Path:
    """A 120x60 JPEG whose EXIF says "rotate 90°": it shows 60 wide and 120 high."""
    pixels = np.zeros((60, 120, 3), dtype=np.uint8)
    pixels[:, :60] = (200, 30, 30)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(path, exif=exif.tobytes())
    return path


def build_library(folder: Path) -> Path:
    make_image(folder / "dog.jpg", 1, (96, 72))
    (folder / "dog.txt").write_text("a brown dog on the beach\na puppy running in sand\n")
    make_image(folder / "cat.png", 2, (80, 60))
    (folder / "cat.txt").write_text("a grey cat sleeping on a sofa\n")
    make_image(folder / "plain.jpg", 3)
    make_image(folder / "sub" / "tree.gif", 4)
    write_rotated(folder / "rotated.jpg")
    write_wav(folder / "talk.wav")
    (folder / "talk.srt").write_text(TRANSCRIPT)
    return folder


@contextmanager
def running(server: WebServer) -> Iterator[WebServer]:
    """``server`` serving in a thread (announced in its home) until the block ends."""
    server.start()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the web server did not start"
        time.sleep(0.02)
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(15)
        server.close()
