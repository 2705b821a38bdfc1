"""The flat index file searched with numpy (``mmsearch.index.flat_arrays``): the same hits and scores as FAISS,
FAISS not imported to search a loaded flat index, and any other layout read by FAISS as before."""

import json
import subprocess
import sys
from pathlib import Path

import faiss
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mmsearch.encoders.base import ModelIdentity, l2_normalise
from mmsearch.index import DEFAULT_INDEX_KIND, create_index, load_index
from mmsearch.index.faiss_index import FaissIndex, float16_flat
from mmsearch.index.flat_arrays import METRIC_INNER_PRODUCT, QT_FP16, FlatArrays, parse_sq_fp16
from mmsearch.store.records import stored_precision

DIM = 16
IDENTITY = ModelIdentity("fake", "16", DIM, {"thumbnail": 16})


def faiss_flat(ids: np.ndarray, vectors: np.ndarray) -> object:
    index = faiss.IndexIDMap2(float16_flat(faiss, vectors.shape[1]))
    if len(ids):
        index.add_with_ids(vectors, ids)
    return index


def parsed(index: object, dim: int) -> FlatArrays | None:
    return parse_sq_fp16(faiss.serialize_index(index), dim)


@settings(max_examples=80, deadline=None)
@given(
    count=st.integers(0, 300),
    dim=st.sampled_from([4, 16, 33]),
    queries=st.integers(1, 9),
    k=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
    duplicates=st.integers(0, 5),
)
def test_numpy_search_gives_faiss_hits_and_scores(
    count: int, dim: int, queries: int, k: int, seed: int, duplicates: int
) -> None:
    rng = np.random.default_rng(seed)
    vectors = stored_precision(rng.standard_normal((count, dim)).astype(np.float32))
    if count:
        vectors[rng.integers(0, count, duplicates)] = vectors[0]  # exact ties
    ids = rng.choice(10**12, size=count, replace=False).astype(np.int64)
    asked = rng.standard_normal((queries, dim)).astype(np.float32)
    index = faiss_flat(ids, vectors)
    arrays = parsed(index, dim)
    assert arrays is not None and len(arrays) == count
    k = max(1, min(k, count)) if count else 1  # as FaissIndex.search asks
    want_scores, want_ids = index.search(asked, k)
    found = arrays.search(asked, k)
    if found is None:  # uncertain (two candidates' scores within rounding): FaissIndex asks FAISS then
        assert count > 1
        return
    got_scores, got_ids = found
    np.testing.assert_array_equal(got_ids, want_ids)
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-5, atol=1e-5)


def test_exact_ties_are_left_to_faiss() -> None:
    vectors = np.zeros((5, DIM), dtype=np.float32)
    arrays = parsed(faiss_flat(np.arange(5, dtype=np.int64), vectors), DIM)
    assert arrays is not None
    assert arrays.search(np.ones((1, DIM), dtype=np.float32), 2) is None


def test_a_generic_search_has_exactly_faiss_ids() -> None:
    rng = np.random.default_rng(1)
    vectors = stored_precision(l2_normalise(rng.standard_normal((5000, 64))))
    ids = np.arange(7, 5007, dtype=np.int64) * 3
    asked = l2_normalise(rng.standard_normal((20, 64)))
    index = faiss_flat(ids, vectors)
    arrays = parsed(index, 64)
    assert arrays is not None
    found = arrays.search(asked, 10)
    assert found is not None  # no near ties among random unit vectors: numpy answers
    want_scores, want_ids = index.search(asked, 10)
    np.testing.assert_allclose(found[0], want_scores, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(found[1], want_ids)


def test_the_layout_constants_are_faiss_own() -> None:
    assert (faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT) == (QT_FP16, METRIC_INNER_PRODUCT)


def test_other_layouts_are_left_to_faiss() -> None:
    vectors = stored_precision(l2_normalise(np.random.default_rng(2).standard_normal((10, DIM))))
    ids = np.arange(10, dtype=np.int64)
    good = faiss.serialize_index(faiss_flat(ids, vectors))
    assert parse_sq_fp16(good, DIM) is not None
    assert parse_sq_fp16(good, DIM + 1) is None  # another width
    assert parse_sq_fp16(good[:-1], DIM) is None  # truncated
    assert parse_sq_fp16(np.concatenate([good, good[:1]]), DIM) is None  # trailing bytes
    assert parse_sq_fp16(good[:20], DIM) is None  # cut inside a header
    float32 = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
    float32.add_with_ids(vectors, ids)
    assert parse_sq_fp16(faiss.serialize_index(float32), DIM) is None  # the older float32 file
    l2 = faiss.IndexIDMap2(faiss.IndexScalarQuantizer(DIM, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_L2))
    l2.add_with_ids(vectors, ids)
    assert parse_sq_fp16(faiss.serialize_index(l2), DIM) is None  # another metric
    eight_bit = faiss.IndexIDMap2(faiss.IndexScalarQuantizer(DIM, faiss.ScalarQuantizer.QT_8bit_direct, 0))
    eight_bit.add_with_ids(vectors, ids)
    assert parse_sq_fp16(faiss.serialize_index(eight_bit), DIM) is None  # another quantiser


def test_an_older_float32_file_still_loads_and_searches_with_faiss(tmp_path: Path) -> None:
    vectors = stored_precision(l2_normalise(np.random.default_rng(3).standard_normal((50, DIM))))
    ids = np.arange(50, dtype=np.int64)
    old = FaissIndex(IDENTITY, faiss.IndexIDMap2(faiss.IndexFlatIP(DIM)))
    old.add(ids, vectors)
    old.save(tmp_path / "old.mmidx", {})
    loaded, _ = load_index(tmp_path / "old.mmidx")
    assert isinstance(loaded, FaissIndex) and loaded._arrays is None
    np.testing.assert_array_equal(loaded.search(vectors[:3], 1)[1][:, 0], [0, 1, 2])


def test_a_loaded_flat_index_changes_saves_and_reads_back(tmp_path: Path) -> None:
    vectors = stored_precision(l2_normalise(np.random.default_rng(4).standard_normal((40, DIM))))
    ids = np.arange(100, 140, dtype=np.int64)
    index = create_index(IDENTITY, DEFAULT_INDEX_KIND)
    index.add(ids, vectors)
    index.save(tmp_path / "a.mmidx", {"generation": 1})
    loaded, _ = load_index(tmp_path / "a.mmidx")
    assert isinstance(loaded, FaissIndex) and loaded._arrays is not None
    loaded.save(tmp_path / "b.mmidx", {"generation": 1})  # unchanged: the same payload, written without FAISS
    assert (tmp_path / "b.mmidx").read_bytes() == (tmp_path / "a.mmidx").read_bytes()
    assert [chunk[0].tolist() for chunk in loaded.iter_vectors(16)] == [ids[i : i + 16].tolist() for i in (0, 16, 32)]
    assert loaded.remove(np.array([100, 101, 5], dtype=np.int64)) == 2
    loaded.add(np.array([7], dtype=np.int64), vectors[:1])
    assert loaded._arrays is None and len(loaded) == 39
    assert loaded.search(vectors[:1], 1)[1][0, 0] == 7
    loaded.save(tmp_path / "c.mmidx", {"generation": 2})
    again, _ = load_index(tmp_path / "c.mmidx")
    assert sorted(again.ids().tolist()) == sorted([7, *range(102, 140)])
    np.testing.assert_array_equal(again.vectors([7])[7], vectors[0])


PROBE = """
import json, sys
import numpy as np
from pathlib import Path
from mmsearch.index import load_index
index, _ = load_index(Path(sys.argv[1]))
scores, ids = index.search(np.ones((1, {dim}), dtype=np.float32), 3)
print(json.dumps({{"ids": ids.tolist(), "faiss": "faiss" in sys.modules}}))
"""


def test_searching_a_loaded_flat_index_does_not_import_faiss(tmp_path: Path) -> None:
    vectors = stored_precision(l2_normalise(np.random.default_rng(5).standard_normal((30, DIM))))
    index = create_index(IDENTITY, DEFAULT_INDEX_KIND)
    index.add(np.arange(30, dtype=np.int64), vectors)
    index.save(tmp_path / "a.mmidx", {})
    want = index.search(np.ones((1, DIM), dtype=np.float32), 3)[1].tolist()
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(dim=DIM), str(tmp_path / "a.mmidx")],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout)
    assert result == {"ids": want, "faiss": False}
