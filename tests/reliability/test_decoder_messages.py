"""Messages that C decoders write themselves (libtiff's ``ZIPDecode: Decoding error ...``, ``JPEGLib: ...``) go to
the report of the file being decoded, shown with ``-v``, never as stray lines on the real stderr (fd 2); the
user's own stderr lines are untouched, and messages of files decoded at once in several threads stay apart."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import threading
from pathlib import Path

from PIL import Image, TiffImagePlugin

from mmsearch.ingest.decodewarnings import collecting, install_libtiff_handler, routed
from tests.conftest import make_image

ZIP_ERROR = "ZIPDecode: Decoding error"
JPEG_ERROR = "JPEGLib: Quantization table"


def deflate_tiff_with_bad_data(path: Path) -> Path:
    """A deflate TIFF whose compressed strip is garbage: libtiff reports ``ZIPDecode: Decoding error ...``."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), "red").save(buffer, "TIFF", compression="tiff_adobe_deflate")
    data = bytearray(buffer.getvalue())
    data[8:40] = b"\x13" * 32  # the strip follows the 8-byte header
    path.write_bytes(bytes(data))
    return path


def jpeg_tiff_without_tables(path: Path) -> Path:
    """A JPEG-in-TIFF whose JPEGTables tag is renamed away: ``JPEGLib: Quantization table 0x00 was not defined``."""
    return _rename_last_tag(path, "RGB", "jpeg")


def tiff_with_unknown_tag(path: Path) -> Path:
    """A good deflate TIFF with a private tag libtiff does not know (a libtiff *warning*, which Pillow silences)."""
    return _rename_last_tag(path, "RGB", "tiff_adobe_deflate")


def _rename_last_tag(path: Path, mode: str, compression: str) -> Path:
    buffer = io.BytesIO()
    info = TiffImagePlugin.ImageFileDirectory_v2()
    Image.new(mode, (64, 48), "blue").save(buffer, "TIFF", compression=compression, tiffinfo=info)
    data = bytearray(buffer.getvalue())
    (first,) = struct.unpack("<I", data[4:8])
    (count,) = struct.unpack("<H", data[first : first + 2])
    last = first + 2 + 12 * (count - 1)
    data[last : last + 2] = struct.pack("<H", 65000)
    path.write_bytes(bytes(data))
    return path


def decode(path: Path) -> None:
    try:
        with Image.open(path) as image:
            image.load()
    except OSError:
        pass


def run_mmsearch(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mmsearch", "--home", str(home), "--model", "fake:16", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_libtiff_errors_go_to_the_files_report_not_to_stderr(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    make_image(folder / "fine.jpg", 1)
    deflate_tiff_with_bad_data(folder / "zipbad.tif")
    jpeg_tiff_without_tables(folder / "notables.tif")
    tiff_with_unknown_tag(folder / "private_tag.tif")
    quiet = run_mmsearch(tmp_path / "quiet", "ingest", str(folder))
    assert "added" in quiet.stdout, quiet.stderr
    assert ZIP_ERROR not in quiet.stderr and JPEG_ERROR not in quiet.stderr, quiet.stderr
    assert "TIFF" not in quiet.stderr, quiet.stderr  # nor any libtiff warning (the private tag)
    assert "decoder warnings (-v shows them)" in quiet.stderr
    verbose = run_mmsearch(tmp_path / "verbose", "-v", "ingest", str(folder))
    assert f"decoder warning: {folder / 'zipbad.tif'}: libtiff: {ZIP_ERROR}" in verbose.stderr, verbose.stderr
    assert f"decoder warning: {folder / 'notables.tif'}: libtiff: {JPEG_ERROR}" in verbose.stderr, verbose.stderr
    stray = [line for line in verbose.stderr.splitlines() if line.startswith(("ZIPDecode", "JPEGLib", "TIFF"))]
    assert stray == []
    assert "private_tag.tif" not in verbose.stderr  # indexed, with nothing to say


def test_messages_of_threads_decoding_at_once_stay_with_their_files(tmp_path: Path) -> None:
    paths = {
        "zip": deflate_tiff_with_bad_data(tmp_path / "zip.tif"),
        "jpeg": jpeg_tiff_without_tables(tmp_path / "jpeg.tif"),
        "good": tiff_with_unknown_tag(tmp_path / "good.tif"),
    }
    expected = {"zip": ZIP_ERROR, "jpeg": JPEG_ERROR, "good": None}
    rounds = 30
    start = threading.Barrier(6)
    wrong: list[str] = []

    def worker(name: str) -> None:
        start.wait()
        for _ in range(rounds):
            sink: list[str] = []
            with collecting(sink):
                decode(paths[name])
            want = expected[name]
            if (want is None and sink) or (want is not None and (len(sink) != 1 or want not in sink[0])):
                wrong.append(f"{name}: {sink}")

    with routed():
        threads = [threading.Thread(target=worker, args=(name,)) for name in [*paths, *paths]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert wrong == []


def test_outside_a_file_the_message_and_the_users_own_lines_reach_stderr(tmp_path: Path) -> None:
    """No redirection of fd 2: a decode outside :func:`collecting` logs libtiff's line as a warning, and
    what the program itself writes to fd 2 meanwhile is all there."""
    bad = deflate_tiff_with_bad_data(tmp_path / "zip.tif")
    script = (
        "import os, sys\n"
        "from mmsearch.ingest.decodewarnings import collecting, routed\n"
        "from tests.reliability.test_decoder_messages import decode\n"
        "from pathlib import Path\n"
        "with routed():\n"
        "    os.write(2, b'mine before\\n')\n"
        "    with collecting([]):\n"
        f"        decode(Path({str(bad)!r}))\n"
        f"    decode(Path({str(bad)!r}))\n"
        "    sys.stderr.write('mine after\\n')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    lines = result.stderr.splitlines()
    assert result.returncode == 0, result.stderr
    assert lines == ["mine before", "ZIPDecode: Decoding error at scanline 0, incorrect header check", "mine after"]


def test_the_handler_is_installed() -> None:
    assert install_libtiff_handler()
