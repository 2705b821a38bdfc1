"""Saved indexes are read in place (memory-mapped): searched as loaded, copied before the first change, and the
file can be replaced underneath a loaded index."""

from pathlib import Path

import numpy as np
import pytest

from mmsearch.encoders.base import ModelIdentity, l2_normalise
from mmsearch.errors import IndexCorruptError
from mmsearch.index import DEFAULT_INDEX_KIND, HNSW_INDEX_KIND, create_index, load_index
from mmsearch.index.hnsw_index import HnswIndex
from mmsearch.store.records import stored_precision

DIM = 32
IDENTITY = ModelIdentity("fake", "32", DIM, {"thumbnail": 32})
# As the database hands them out (float16 values): what every index is built from, held exactly.
VECTORS = stored_precision(l2_normalise(np.random.default_rng(0).standard_normal((500, DIM))))
IDS = np.arange(100, 600, dtype=np.int64)


@pytest.mark.parametrize("kind", [DEFAULT_INDEX_KIND, HNSW_INDEX_KIND])
def test_a_loaded_index_is_mapped_searched_then_copied_before_it_changes(tmp_path: Path, kind: str) -> None:
    index = create_index(IDENTITY, kind)
    index.add(IDS, VECTORS)
    path = tmp_path / "index.mmidx"
    index.save(path, {"generation": 1})
    expected = index.search(VECTORS[:20], 5)

    loaded, header = load_index(path)
    assert loaded._mapping is not None and header["generation"] == 1 and len(loaded) == 500
    for got, want in zip(loaded.search(VECTORS[:20], 5), expected, strict=True):
        np.testing.assert_array_equal(got, want)
    picked = loaded.vectors([100, 599, 7])
    assert sorted(picked) == [100, 599]
    np.testing.assert_allclose(picked[599], VECTORS[-1], rtol=1e-6)

    # The file is replaced (as every save does: a rename) while the loaded index still reads the old one.
    other = create_index(IDENTITY, kind)
    other.add(np.array([1], dtype=np.int64), VECTORS[:1])
    other.save(path, {"generation": 2})
    assert loaded.search(VECTORS[:1], 1)[1][0, 0] == 100

    fresh = l2_normalise(np.random.default_rng(1).standard_normal((3, DIM)))
    loaded.add(np.array([100, 700, 701], dtype=np.int64), fresh)  # a change: an ordinary copy first
    assert loaded._mapping is None and len(loaded) == 502
    assert loaded.remove(np.array([101], dtype=np.int64)) == 1 and len(loaded) == 501
    np.testing.assert_array_equal(loaded.search(fresh, 1)[1][:, 0], [100, 700, 701])
    loaded.save(tmp_path / "again.mmidx", {"generation": 3})
    reread, _ = load_index(tmp_path / "again.mmidx")
    assert sorted(reread.ids().tolist()) == sorted({*IDS.tolist(), 700, 701} - {101})


def test_a_duplicate_id_in_a_mapped_hnsw_file_is_reported_when_the_id_map_is_built(tmp_path: Path) -> None:
    index = HnswIndex(IDENTITY)
    index.add(IDS[:10], VECTORS[:10])
    index._labels[3] = index._labels[4]  # damage: two graph nodes claim one id
    path = tmp_path / "index.mmidx"
    index.save(path, {})
    loaded, _ = load_index(path)
    with pytest.raises(IndexCorruptError, match="twice"):
        loaded.remove(np.array([IDS[0]], dtype=np.int64))


def test_a_truncated_mapped_file_is_corrupt_not_a_crash(tmp_path: Path) -> None:
    index = create_index(IDENTITY, HNSW_INDEX_KIND)
    index.add(IDS, VECTORS)
    path = tmp_path / "index.mmidx"
    index.save(path, {})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 5000])
    with pytest.raises(IndexCorruptError):
        load_index(path)


def test_a_loaded_hnsw_index_is_maintained_and_searched_without_building_its_id_map(tmp_path: Path) -> None:
    """The id -> position map grows with the library (1M entries: ~0.4 s and ~100 MB): a cold query, which loads the
    index, checks whether it needs compacting and searches it, must not build it."""
    from mmsearch.index.policy import maintain

    index = HnswIndex(IDENTITY)
    index.add(IDS, VECTORS)
    index.remove(IDS[:40])  # 40 tombstones, below the compaction fraction
    path = tmp_path / "index.mmidx"
    index.save(path, {})
    expected = index.search(VECTORS[40:60], 5)

    loaded, _ = load_index(path)
    assert maintain(loaded, threshold=100) is loaded  # stays HNSW (500 nodes past the threshold)
    assert loaded.tombstones == 40 and len(loaded) == 460 and not loaded.needs_compaction()
    for got, want in zip(loaded.search(VECTORS[40:60], 5), expected, strict=True):
        np.testing.assert_array_equal(got, want)
    assert loaded._position_map is None  # nothing above needed the id map
    assert loaded.remove(IDS[40:41]) == 1 and loaded.tombstones == 41  # a change builds it, and counts agree
