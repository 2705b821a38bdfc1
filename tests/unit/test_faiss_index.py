from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mmsearch.encoders.base import ModelIdentity, l2_normalise
from mmsearch.errors import IndexCorruptError, ModelMismatchError
from mmsearch.index.faiss_index import FaissIndex, read_header
from mmsearch.store.records import COSINE_BOUND, stored_precision

IDENTITY = ModelIdentity("fake", "8", 8, {"thumbnail": 8})


def random_unit(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    return l2_normalise(np.random.default_rng(seed).standard_normal((n, dim)))


def test_search_returns_exact_inner_product_ranking() -> None:
    """Exact on the vectors as the database stores them (float16 values): every vector the index is built from."""
    index = FaissIndex(IDENTITY)
    vectors = stored_precision(random_unit(50))
    ids = np.arange(100, 150)
    index.add(ids, vectors)
    query = random_unit(1, seed=7)
    scores, found = index.search(query, 5)
    expected = np.argsort(-(vectors @ query[0]))[:5] + 100
    np.testing.assert_array_equal(found[0], expected)
    np.testing.assert_allclose(scores[0], np.sort(vectors @ query[0])[::-1][:5], rtol=1e-5)


def test_float32_vectors_are_kept_as_the_store_keeps_them() -> None:
    """A float32 vector is rounded to float16 as the database rounds it; scores stay within the stated bound of
    the float32 ones and the stored vectors within COSINE_BOUND of the given ones."""
    index = FaissIndex(IDENTITY)
    vectors = random_unit(40, seed=3)
    index.add(np.arange(40), vectors)
    kept = index.vectors(range(40))
    stored = np.stack([kept[i] for i in range(40)])
    np.testing.assert_array_equal(stored, stored_precision(vectors))
    cosines = np.sum(stored * vectors, axis=1) / np.linalg.norm(stored, axis=1)
    assert cosines.min() >= COSINE_BOUND
    query = random_unit(1, seed=9)
    scores, found = index.search(query, 40)
    assert np.abs(scores[0] - vectors[found[0]] @ query[0]).max() <= 2**-11


def test_add_replaces_and_remove_deletes() -> None:
    index = FaissIndex(IDENTITY)
    index.add(np.array([1, 2]), random_unit(2))
    index.add(np.array([2]), random_unit(1, seed=3))
    assert len(index) == 2
    assert index.remove(np.array([1, 99])) == 1
    np.testing.assert_array_equal(index.ids(), [2])


def test_refuses_other_models_and_widths() -> None:
    index = FaissIndex(IDENTITY)
    with pytest.raises(ModelMismatchError, match="width 9"):
        index.add(np.array([1]), random_unit(1, dim=9))
    with pytest.raises(ModelMismatchError):
        index.search(random_unit(1, dim=9), 3)


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "i.mmidx"
    index = FaissIndex(IDENTITY)
    index.add(np.arange(3), random_unit(3))
    index.save(path, {"generation": 4})
    index.add(np.arange(3, 5), random_unit(2, seed=1))
    index.save(path, {"generation": 5})
    assert [p.name for p in tmp_path.iterdir()] == ["i.mmidx"]
    header = read_header(path)
    assert header["generation"] == 5 and header["count"] == 5
    assert header["fingerprint"] == IDENTITY.fingerprint


def test_corrupt_files_raise_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.mmidx"
    path.write_bytes(b"garbage")
    with pytest.raises(IndexCorruptError, match="not an mmsearch index"):
        FaissIndex.load(path)
    good = FaissIndex(IDENTITY)
    good.add(np.arange(2), random_unit(2))
    good.save(path, {})
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(IndexCorruptError):
        FaissIndex.load(path)


@settings(max_examples=40, deadline=None)
@given(
    ids=st.lists(st.integers(0, 2**40), min_size=1, max_size=30, unique=True),
    data=st.data(),
)
def test_save_load_round_trip(tmp_path_factory, ids: list[int], data) -> None:
    vectors = data.draw(arrays(np.float32, (len(ids), 8), elements=st.floats(-1, 1, width=32)))
    index = FaissIndex(IDENTITY)
    index.add(np.array(ids), vectors)
    path = tmp_path_factory.mktemp("rt") / "x.mmidx"
    index.save(path, {"generation": 1})
    loaded, header = FaissIndex.load(path)
    assert header["identity"] == IDENTITY.to_dict()
    assert sorted(loaded.ids().tolist()) == sorted(ids)
    query = np.ones((1, 8), dtype=np.float32)
    np.testing.assert_array_equal(loaded.search(query, len(ids))[1], index.search(query, len(ids))[1])
