"""Every index kind against exact search: recall, updates, persistence, compaction, and the kind policy."""

from pathlib import Path

import numpy as np
import pytest

from mmsearch.encoders.base import ModelIdentity, l2_normalise
from mmsearch.errors import IndexCorruptError, ModelMismatchError
from mmsearch.index import DEFAULT_INDEX_KIND, HNSW_INDEX_KIND, create_index, index_kinds, load_index
from mmsearch.index.faiss_index import read_header
from mmsearch.index.hnsw_index import HnswIndex
from mmsearch.index.policy import (
    DEFAULT_HNSW_THRESHOLD,
    SHRINK_FRACTION,
    build_index,
    choose_index_kind,
    convert,
    maintain,
    preferred_kind,
)
from mmsearch.store.records import stored_precision

DIM = 64
K = 10
IDENTITY = ModelIdentity("fake", "64", DIM, {"thumbnail": 64})
KINDS = [DEFAULT_INDEX_KIND, HNSW_INDEX_KIND]
RECALL_FLOOR = {DEFAULT_INDEX_KIND: 1.0, HNSW_INDEX_KIND: 0.9}


def clustered(n: int, seed: int = 0, clusters: int = 20, spread: float = 0.6) -> np.ndarray:
    """Unit vectors from a Gaussian mixture: near-neighbour structure that makes recall meaningful; as the database
    hands them out (float16 values), what every index is built from and holds exactly."""
    rng = np.random.default_rng(seed)
    centres = l2_normalise(np.random.default_rng(1234).standard_normal((clusters, DIM)))
    points = centres[rng.integers(0, clusters, n)] + rng.standard_normal((n, DIM)) * spread / np.sqrt(DIM)
    return stored_precision(l2_normalise(points))


VECTORS = clustered(2000)
IDS = np.arange(10_000, 12_000, dtype=np.int64)
QUERIES = clustered(50, seed=7)


def exact_top(ids: np.ndarray, vectors: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    return ids[np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :k]]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits)) / truth.shape[1]


def filled(kind: str, ids: np.ndarray = IDS, vectors: np.ndarray = VECTORS):
    index = create_index(IDENTITY, kind)
    for start in range(0, len(ids), 500):  # in batches, as IndexCache adds them
        index.add(ids[start : start + 500], vectors[start : start + 500])
    return index


@pytest.fixture(scope="module", params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


def test_registry_knows_both_kinds() -> None:
    assert set(KINDS) <= set(index_kinds())
    for kind in KINDS:
        assert create_index(IDENTITY, kind).kind == kind


def test_recall_against_exact_and_scores_exact_and_sorted(kind: str) -> None:
    index = filled(kind)
    assert len(index) == len(IDS)
    scores, found = index.search(QUERIES, K)
    assert found.shape == scores.shape == (len(QUERIES), K)
    assert recall(found, exact_top(IDS, VECTORS, QUERIES)) >= RECALL_FLOOR[kind]
    exact = np.einsum("qd,qkd->qk", QUERIES, VECTORS[found - IDS[0]])
    np.testing.assert_allclose(scores, exact, rtol=1e-5, atol=1e-6)
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_removed_ids_never_return_and_readded_ids_return_the_new_vector(kind: str) -> None:
    index = filled(kind)
    gone = IDS[::3]
    assert index.remove(np.concatenate([gone, [-5, 99]])) == len(gone)
    assert index.remove(gone) == 0
    assert len(index) == len(IDS) - len(gone)
    _, found = index.search(VECTORS[::3], K)  # each removed vector queried with itself
    assert not np.isin(found, gone).any()
    assert (found >= 0).all()  # over-fetch still fills every slot

    fresh = clustered(5, seed=99)
    back = gone[:5]
    index.add(back, fresh)
    assert len(index) == len(IDS) - len(gone) + 5
    scores, found = index.search(fresh, 1)
    np.testing.assert_array_equal(found[:, 0], back)
    np.testing.assert_allclose(scores[:, 0], np.sum(fresh * fresh, axis=1), rtol=1e-5)  # exact: |v|^2 ~ 1

    replaced, new_vector = IDS[1], clustered(1, seed=123)  # re-adding a live id replaces its vector
    index.add(np.array([replaced]), new_vector)
    assert len(index) == len(IDS) - len(gone) + 5
    scores, found = index.search(new_vector, 1)
    assert found[0, 0] == replaced and scores[0, 0] == pytest.approx(float(new_vector[0] @ new_vector[0]), rel=1e-5)
    scores, found = index.search(VECTORS[1:2], K)  # the old vector is gone: the id scores as the new one
    np.testing.assert_allclose(scores[found == replaced], float(new_vector[0] @ VECTORS[1]), rtol=1e-5)


def test_save_and_load_round_trip_preserves_kind_and_results(kind: str, tmp_path: Path) -> None:
    index = filled(kind)
    index.remove(IDS[:100])
    path = tmp_path / "i.mmidx"
    index.save(path, {"generation": 3})
    loaded, header = load_index(path)
    assert loaded.kind == kind and header["kind"] == kind
    assert header["generation"] == 3 and header["count"] == len(index) == len(loaded)
    assert read_header(path)["fingerprint"] == IDENTITY.fingerprint
    before, after = index.search(QUERIES, K), loaded.search(QUERIES, K)
    np.testing.assert_array_equal(after[1], before[1])
    np.testing.assert_allclose(after[0], before[0])
    assert [p.name for p in tmp_path.iterdir()] == ["i.mmidx"]


def test_load_dispatches_on_the_file_not_the_argument(tmp_path: Path) -> None:
    path = tmp_path / "h.mmidx"
    filled(HNSW_INDEX_KIND).save(path, {})
    loaded, _ = load_index(path, DEFAULT_INDEX_KIND)  # what an older caller passes
    assert isinstance(loaded, HnswIndex)


def test_empty_index_searches_to_nothing(kind: str) -> None:
    index = create_index(IDENTITY, kind)
    scores, found = index.search(QUERIES[:3], K)
    assert found.shape == (3, 1) and (found == -1).all()
    assert scores.shape == (3, 1)
    index.add(IDS[:3], VECTORS[:3])
    index.remove(IDS[:3])
    assert len(index) == 0
    assert (index.search(QUERIES[:2], K)[1] == -1).all()


def test_k_larger_than_the_index(kind: str) -> None:
    index = create_index(IDENTITY, kind)
    index.add(IDS[:4], VECTORS[:4])
    index.remove(IDS[:1])
    _, found = index.search(QUERIES[:2], 50)
    assert found.shape == (2, 3)
    assert {int(i) for i in found[0]} == set(IDS[1:4].tolist())


def test_refuses_other_widths(kind: str) -> None:
    index = create_index(IDENTITY, kind)
    with pytest.raises(ModelMismatchError, match="width 8"):
        index.add(np.array([1]), np.ones((1, 8), dtype=np.float32))
    with pytest.raises(ModelMismatchError):
        index.search(np.ones((1, 8), dtype=np.float32), 3)


def test_damaged_files_raise_index_corrupt(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "x.mmidx"
    filled(kind, IDS[:200], VECTORS[:200]).save(path, {})
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    with pytest.raises(IndexCorruptError):
        load_index(path)
    path.write_bytes(data + b"junk")
    with pytest.raises(IndexCorruptError, match="trailing"):
        load_index(path)
    path.write_bytes(data.replace(kind.encode(), b"faiss-nope-ip", 1))
    with pytest.raises(IndexCorruptError, match="unknown kind"):
        load_index(path)


# -- HNSW tombstones and compaction ---------------------------------------------------------


def test_hnsw_duplicate_ids_in_one_batch_keep_the_last() -> None:
    index = HnswIndex(IDENTITY)
    index.add(np.array([7, 8, 7]), VECTORS[:3])
    assert len(index) == 2 and index.tombstones == 0
    assert index.search(VECTORS[2:3], 1)[1][0, 0] == 7


def test_hnsw_compaction_drops_tombstones_and_keeps_results(tmp_path: Path) -> None:
    index = filled(HNSW_INDEX_KIND)
    assert isinstance(index, HnswIndex)
    index.remove(IDS[: len(IDS) // 10])
    assert not index.needs_compaction()
    gone = IDS[: len(IDS) // 4]
    index.remove(gone)
    assert index.tombstones == len(gone) and index.needs_compaction()
    live_ids, live_vectors = IDS[len(gone) :], VECTORS[len(gone) :]
    truth = exact_top(live_ids, live_vectors, QUERIES)
    before = index.search(QUERIES, K)
    assert recall(before[1], truth) >= 0.9

    assert index.compact() == len(gone)
    assert index.tombstones == 0 and not index.needs_compaction() and len(index) == len(live_ids)
    np.testing.assert_array_equal(index.ids(), live_ids)
    after = index.search(QUERIES, K)
    assert recall(after[1], truth) >= 0.9
    assert recall(after[1], before[1]) >= 0.9
    assert not np.isin(after[1], gone).any()

    path = tmp_path / "c.mmidx"
    index.save(path, {})
    loaded, header = load_index(path)
    assert header["hnsw"]["tombstones"] == 0
    np.testing.assert_array_equal(loaded.search(QUERIES, K)[1], after[1])


def test_hnsw_tombstones_survive_save_and_load(tmp_path: Path) -> None:
    index = filled(HNSW_INDEX_KIND, IDS[:300], VECTORS[:300])
    index.remove(IDS[:50])
    index.add(IDS[60:70], clustered(10, seed=5))
    path = tmp_path / "t.mmidx"
    index.save(path, {})
    loaded, header = load_index(path)
    assert header["hnsw"]["tombstones"] == index.tombstones == 60
    assert loaded.tombstones == 60 and len(loaded) == 250
    np.testing.assert_array_equal(np.sort(loaded.ids()), np.sort(index.ids()))
    loaded.add(IDS[:1], VECTORS[:1])  # the loaded id map is live: adds and removes keep working
    assert loaded.search(VECTORS[:1], 1)[1][0, 0] == IDS[0]


# -- the policy -----------------------------------------------------------------------------


def test_choose_index_kind_by_size() -> None:
    assert choose_index_kind(0) == DEFAULT_INDEX_KIND
    assert choose_index_kind(DEFAULT_HNSW_THRESHOLD - 1) == DEFAULT_INDEX_KIND
    assert choose_index_kind(DEFAULT_HNSW_THRESHOLD) == HNSW_INDEX_KIND
    assert choose_index_kind(10 * DEFAULT_HNSW_THRESHOLD) == HNSW_INDEX_KIND
    assert choose_index_kind(99, threshold=100) == DEFAULT_INDEX_KIND
    assert choose_index_kind(100, threshold=100) == HNSW_INDEX_KIND


def test_preferred_kind_has_hysteresis() -> None:
    hnsw = filled(HNSW_INDEX_KIND, IDS[:100], VECTORS[:100])
    flat = filled(DEFAULT_INDEX_KIND, IDS[:100], VECTORS[:100])
    assert preferred_kind(flat, threshold=150) == DEFAULT_INDEX_KIND
    assert preferred_kind(hnsw, threshold=150) == HNSW_INDEX_KIND  # 100 >= 0.5 * 150: stays
    assert preferred_kind(hnsw, threshold=int(100 / SHRINK_FRACTION) + 1) == DEFAULT_INDEX_KIND


def test_maintain_converts_both_ways_and_compacts() -> None:
    flat = filled(DEFAULT_INDEX_KIND, IDS[:400], VECTORS[:400])
    assert maintain(flat, threshold=1000) is flat
    grown = maintain(flat, threshold=400)
    assert grown.kind == HNSW_INDEX_KIND and len(grown) == 400
    truth = exact_top(IDS[:400], VECTORS[:400], QUERIES)
    assert recall(grown.search(QUERIES, K)[1], truth) >= 0.9

    grown.remove(IDS[:150])  # 37% tombstones, still above half the threshold
    assert isinstance(grown, HnswIndex) and grown.needs_compaction()
    same = maintain(grown, threshold=400)
    assert same is grown and grown.tombstones == 0 and len(grown) == 250

    shrunk = maintain(grown, threshold=600)  # 250 < 0.5 * 600
    assert shrunk.kind == DEFAULT_INDEX_KIND
    np.testing.assert_array_equal(np.sort(shrunk.ids()), IDS[150:400])


def test_build_index_turns_into_hnsw_at_the_threshold() -> None:
    chunks = ((IDS[s : s + 256], VECTORS[s : s + 256]) for s in range(0, len(IDS), 256))
    index = build_index(IDENTITY, chunks, threshold=1000)
    assert index.kind == HNSW_INDEX_KIND and len(index) == len(IDS)
    assert recall(index.search(QUERIES, K)[1], exact_top(IDS, VECTORS, QUERIES)) >= 0.9
    small = build_index(IDENTITY, [(IDS[:10], VECTORS[:10])], threshold=1000)
    assert small.kind == DEFAULT_INDEX_KIND and len(small) == 10


def test_convert_keeps_every_id_and_vector() -> None:
    hnsw = filled(HNSW_INDEX_KIND, IDS[:300], VECTORS[:300])
    hnsw.remove(IDS[:10])
    flat = convert(hnsw, DEFAULT_INDEX_KIND)
    scores, found = flat.search(VECTORS[10:20], 1)
    np.testing.assert_array_equal(found[:, 0], IDS[10:20])
    np.testing.assert_allclose(scores[:, 0], np.sum(VECTORS[10:20] ** 2, axis=1), rtol=1e-5)  # exact: |v|^2 ~ 1
