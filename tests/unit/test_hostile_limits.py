"""The pre-decode limits, binary-text detection and folder-entry classification, one by one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmsearch import reasons
from mmsearch.captions.sidecar import looks_binary, read_caption_sidecar
from mmsearch.errors import UnreadableMediaError
from mmsearch.imageio import MAX_ASPECT, MAX_DECODED_BYTES, check_size
from mmsearch.ingest.classify import FILE, FOLDER, SKIP, classify


@pytest.mark.parametrize(
    ("width", "height", "mode", "reason"),
    [
        (30_000, 1, "RGB", reasons.EXTREME_ASPECT),
        (1, 100_000, "L", reasons.EXTREME_ASPECT),
        (0, 10, "RGB", reasons.EXTREME_ASPECT),
        (20_000, 20_000, "1", reasons.TOO_MANY_PIXELS),
        (15_000, 10_000, "RGBA", reasons.TOO_MANY_PIXELS),  # 600 MB decoded, under a raised pixel limit
    ],
)
def test_limits_refuse_before_decoding(width: int, height: int, mode: str, reason: str) -> None:
    max_pixels = 89_478_485 if reason != reasons.TOO_MANY_PIXELS or mode == "1" else 10**9
    with pytest.raises(UnreadableMediaError) as raised:
        check_size(width, height, mode, max_pixels)
    assert raised.value.reason == reason


@given(st.integers(1, 20_000), st.integers(1, 20_000))
def test_what_the_limits_let_through_is_bounded(width: int, height: int) -> None:
    try:
        check_size(width, height, "RGBA", 89_478_485)
    except UnreadableMediaError:
        return
    assert max(width, height) <= MAX_ASPECT * min(width, height)
    assert width * height * 4 <= MAX_DECODED_BYTES


def test_binary_text_is_told_from_legacy_encodings(tmp_path: Path) -> None:
    assert looks_binary(bytes(range(1, 256)) * 4)
    assert looks_binary(b"PK\x03\x04\x00\x00")
    assert not looks_binary("Café au lait, crème brûlée\r\n".encode("cp1252"))
    assert not looks_binary("a dog\n".encode("utf-16"))
    sidecar = tmp_path / "x.txt"
    sidecar.write_bytes(bytes(range(1, 256)) * 8)
    with pytest.raises(UnreadableMediaError, match="binary"):
        read_caption_sidecar(str(sidecar))


def test_classify_folder_entries(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "a.jpg").write_bytes(b"x")
    os.mkfifo(root / "pipe")
    os.symlink(root / "a.jpg", root / "to_a.jpg")
    os.symlink(root / "nowhere", root / "broken")
    os.symlink(root, root / "sub" / "up")
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", root / "out")
    os.symlink(tmp_path, root / "top")
    os.symlink(root / "sub", root / "again")
    found = {}
    for folder in (root, root / "sub"):
        with os.scandir(folder) as listing:
            found.update({entry.name: classify(entry, str(root)) for entry in listing})
    assert {name: (entry.what, entry.code) for name, entry in found.items()} == {
        "a.jpg": (FILE, ""),
        "sub": (FOLDER, ""),
        "to_a.jpg": (FILE, ""),
        "pipe": (SKIP, reasons.NOT_A_REGULAR_FILE),
        "broken": (SKIP, reasons.BROKEN_SYMLINK),
        "up": (SKIP, reasons.SYMLINK_LOOP),
        "top": (SKIP, reasons.SYMLINK_LOOP),
        "out": (SKIP, reasons.SYMLINK_OUTSIDE),
        "again": (SKIP, reasons.SYMLINKED_FOLDER),
    }
