"""Reading an image file whole for the ingest (``read_whole``) and Pillow's pixel-block reuse during a run."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmsearch import Engine
from mmsearch.errors import UnreadableMediaError
from mmsearch.imageio import reused_pixel_blocks
from mmsearch.ingest import reading
from mmsearch.ingest.reading import read_whole
from mmsearch.reasons import EMPTY_FILE, FILE_TOO_LARGE
from tests.conftest import make_image


def test_a_file_is_read_whole_up_to_the_limit_and_refused_past_it(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(b"x" * 1000)
    assert read_whole(str(path), 1000) == b"x" * 1000
    with pytest.raises(UnreadableMediaError) as refused:
        read_whole(str(path), 999)
    assert refused.value.reason == FILE_TOO_LARGE
    path.write_bytes(b"")
    with pytest.raises(UnreadableMediaError) as empty:
        read_whole(str(path), 1000)
    assert empty.value.reason == EMPTY_FILE


@pytest.mark.parametrize("stated", [0, 10, 999])
def test_a_file_larger_than_its_size_said_is_still_read_whole(tmp_path: Path, monkeypatch, stated: int) -> None:
    """The first read is sized by ``fstat``; a file that grew since (or a size of 0, as a pipe has) reads on."""
    path = tmp_path / "a.jpg"
    content = bytes(range(256)) * 4
    path.write_bytes(content)
    real_fstat = os.fstat

    def shrunk(fd: int) -> os.stat_result:
        values = list(real_fstat(fd))
        values[6] = stated  # st_size
        return os.stat_result(values)

    monkeypatch.setattr(reading.os, "fstat", shrunk)
    assert read_whole(str(path), 4096) == content
    with pytest.raises(UnreadableMediaError) as refused:
        read_whole(str(path), len(content) - 1)
    assert refused.value.reason == FILE_TOO_LARGE


def test_pixel_blocks_are_reused_inside_the_block_and_released_after() -> None:
    core = Image.core
    before = core.get_blocks_max()
    with reused_pixel_blocks(before + 4):
        assert core.get_blocks_max() == before + 4
        reused = core.get_stats()["reused_blocks"]
        for _ in range(3):
            Image.new("RGB", (300, 200), None).load()
        assert core.get_stats()["reused_blocks"] > reused
    assert core.get_blocks_max() == before
    assert core.get_stats()["blocks_cached"] <= before


def test_overlapping_runs_keep_the_largest_and_restore_pillow_whichever_ends_first() -> None:
    """Two engines ingesting in one process: the first to end must not drop the other's setting, and the last to
    end restores Pillow's own (ending in the order they began and in the other order)."""
    core = Image.core
    before = core.get_blocks_max()
    for first_to_end in (0, 1):
        runs = [reused_pixel_blocks(before + 4), reused_pixel_blocks(before + 9)]
        for run in runs:
            run.__enter__()
        assert core.get_blocks_max() == before + 9
        runs[first_to_end].__exit__(None, None, None)
        assert core.get_blocks_max() == (before + 4 if first_to_end == 1 else before + 9)
        runs[1 - first_to_end].__exit__(None, None, None)
        assert core.get_blocks_max() == before


def test_threads_raising_the_block_cache_at_random_leave_pillow_as_it_was() -> None:
    core = Image.core
    before = core.get_blocks_max()
    start = threading.Barrier(6)

    def run(blocks: int) -> None:
        start.wait()
        for _ in range(50):
            with reused_pixel_blocks(blocks):
                assert core.get_blocks_max() >= blocks
                Image.new("RGB", (64, 48), None).load()

    threads = [threading.Thread(target=run, args=(before + 1 + index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert core.get_blocks_max() == before


def test_an_ingest_decodes_into_reused_pixel_blocks_and_restores_pillow(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(6):
        Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(folder / f"{index}.jpg")
    core = Image.core
    before, reused = core.get_blocks_max(), core.get_stats()["reused_blocks"]
    with Engine.open(tmp_path / "home", model="fake:16", workers=1) as engine:
        assert engine.ingest(folder).embedded == 6
    assert core.get_stats()["reused_blocks"] > reused
    assert core.get_blocks_max() == before


def test_the_ray_decode_task_reads_within_the_same_limits_as_the_local_ingest(tmp_path: Path, monkeypatch) -> None:
    """Each file's outcome of a Ray decode task: pixels and probe, or one line (empty, gone, not an image, over
    the size limit; the file is never read past the limit)."""
    from mmsearch.ingest import ray_executor

    make_image(tmp_path / "good.jpg", 1)
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_bytes(b"not an image at all")
    (tmp_path / "big.jpg").write_bytes(b"\xff\xd8" + b"\0" * (2 << 20))
    monkeypatch.setattr(ray_executor, "MAX_IMAGE_FILE_BYTES", 1 << 20)
    names = ["good.jpg", "empty.jpg", "gone.jpg", "text.jpg", "big.jpg"]
    decoded = ray_executor.decode_files([str(tmp_path / name) for name in names], 10**8, None)
    good = decoded[0]
    assert good.error is None and good.pixels is not None and good.pixels.dtype.name == "uint8"
    assert good.pixels.shape[2] == 3 and good.probe is not None and good.probe.width == good.pixels.shape[1]
    errors = [item.error or "" for item in decoded[1:]]
    assert "empty" in errors[0] and "gone" in errors[1] and "not an image" in errors[2] and "size limit" in errors[3]
    assert all("\n" not in error for error in errors)
