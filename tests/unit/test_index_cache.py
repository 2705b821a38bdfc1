"""IndexCache under the index-kind policy: crossing the threshold, shrinking back, removals, persistence, status,
and an Engine whose collections turn HNSW searching exactly like one that stays flat."""

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmsearch import Engine
from mmsearch.encoders.base import l2_normalise
from mmsearch.encoders.fake import FakeEncoder
from mmsearch.index import DEFAULT_INDEX_KIND, HNSW_INDEX_KIND
from mmsearch.index.cache import IndexCache
from mmsearch.index.faiss_index import read_header
from mmsearch.index.hnsw_index import COMPACT_FRACTION, HnswIndex
from mmsearch.index.policy import SHRINK_FRACTION, kind_for
from mmsearch.store.database import connect, upgrade_to_head
from mmsearch.store.records import FileRecord, stored_precision
from mmsearch.store.repository import MetadataStore
from tests.conftest import make_image

FLAT, HNSW = DEFAULT_INDEX_KIND, HNSW_INDEX_KIND
IDENTITY = FakeEncoder(16).identity
DIM = IDENTITY.dim
THRESHOLD = 50
K = 10


def clustered(n: int, seed: int, clusters: int = 12, spread: float = 0.5) -> np.ndarray:
    """Unit vectors from a Gaussian mixture, so recall against exact search means something; as the database
    hands them out (float16 values), so every index holds them exactly."""
    rng = np.random.default_rng(seed)
    centres = l2_normalise(np.random.default_rng(99).standard_normal((clusters, DIM)))
    points = centres[rng.integers(0, clusters, n)] + rng.standard_normal((n, DIM)) * spread / np.sqrt(DIM)
    return stored_precision(l2_normalise(points))


class Library:
    """An in-memory store with one model, whose image collection an IndexCache mirrors as ingest would."""

    def __init__(self, path: Path, threshold: int = THRESHOLD) -> None:
        engine = connect("sqlite://")
        upgrade_to_head(engine)
        self.store = MetadataStore(engine)
        self.model_id = self.store.adopt_model(IDENTITY)
        self.path = path
        self.cache = self.open_cache(threshold)
        self.vectors: dict[int, np.ndarray] = {}
        self._next = 0

    def open_cache(self, threshold: int = THRESHOLD) -> IndexCache:
        return IndexCache(self.store, self.model_id, IDENTITY, self.path, hnsw_threshold=threshold)

    def add(self, vectors: np.ndarray) -> np.ndarray:
        """Write files with these vectors, then mirror them in the index; returns their ids."""
        self.cache.get()  # loaded before the change, as ingest does
        records = [
            FileRecord(f"/lib/{self._next + i}.jpg", "image", 1, 1, f"h{self._next + i}") for i in range(len(vectors))
        ]
        hashes = {record.content_hash: vector for record, vector in zip(records, vectors, strict=True)}
        self._next += len(vectors)
        ids, generation = self.store.write_files(self.model_id, records, hashes)
        ids = np.array(ids, dtype=np.int64)
        self.cache.apply(generation, ids, vectors)
        self.vectors.update(zip(ids.tolist(), vectors, strict=True))
        return ids

    def remove(self, ids: np.ndarray) -> None:
        self.cache.get()
        written = self.store.delete_files([int(i) for i in ids])
        self.cache.apply(written.generations["image"], remove_ids=np.asarray(ids, dtype=np.int64))
        for key in ids.tolist():
            self.vectors.pop(key)

    def exact_top(self, queries: np.ndarray, k: int = K) -> np.ndarray:
        ids = np.array(sorted(self.vectors), dtype=np.int64)
        matrix = np.stack([self.vectors[i] for i in ids.tolist()])
        return ids[np.argsort(-(queries @ matrix.T), axis=1, kind="stable")[:, :k]]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits)) / truth.shape[1]


@pytest.fixture
def library(tmp_path: Path) -> Library:
    return Library(tmp_path / "image.mmidx")


QUERIES = clustered(40, seed=7)


def test_crossing_the_threshold_turns_hnsw_and_still_finds_the_neighbours(library: Library) -> None:
    kinds = []
    for batch in range(10):  # 10 batches of 20: flat for the first two, HNSW from 60 on
        library.add(clustered(20, seed=batch))
        kinds.append(library.cache.kind)
        assert len(library.cache.get()) == 20 * (batch + 1)
    assert kinds == [FLAT, FLAT] + [HNSW] * 8
    index = library.cache.get()
    assert isinstance(index, HnswIndex)
    scores, found = index.search(QUERIES, K)
    assert recall(found, library.exact_top(QUERIES)) >= 0.9
    exact = np.einsum("qd,qkd->qk", QUERIES, np.stack([[library.vectors[i] for i in row] for row in found.tolist()]))
    np.testing.assert_allclose(scores, exact, rtol=1e-5, atol=1e-6)  # the scores found are exact

    rebuilt = library.open_cache().rebuild()  # a rebuild from the database picks the same kind
    assert rebuilt.kind == HNSW and len(rebuilt) == 200


def test_shrinking_goes_back_to_flat_only_below_half_the_threshold(library: Library) -> None:
    ids = library.add(clustered(60, seed=1))
    assert library.cache.kind == HNSW
    library.remove(ids[:20])  # 40 left: below the threshold, above half of it
    assert library.cache.kind == HNSW
    library.remove(ids[20:35])  # 25 = half the threshold: still HNSW
    assert library.cache.kind == HNSW and len(library.cache.get()) == 25
    library.remove(ids[35:36])  # 24 < 25: flat again
    assert library.cache.kind == FLAT
    np.testing.assert_array_equal(np.sort(library.cache.get().ids()), ids[36:])
    more = library.add(clustered(25, seed=2))  # 49: still flat (no hysteresis on the way up)
    assert library.cache.kind == FLAT
    library.add(clustered(1, seed=3))  # 50: HNSW
    assert library.cache.kind == HNSW
    _, found = library.cache.get().search(QUERIES, K)
    assert recall(found, library.exact_top(QUERIES)) >= 0.9
    assert not np.isin(found, ids[:36]).any() and np.isin(more, library.cache.get().ids()).all()


def test_remove_in_place_and_compaction(library: Library) -> None:
    ids = library.add(clustered(200, seed=4))
    index = library.cache.get()
    assert isinstance(index, HnswIndex)
    library.remove(ids[:30])  # 15% tombstones: removed in place, nothing rebuilt
    assert library.cache.get() is index and index.tombstones == 30
    _, found = index.search(np.stack([library.vectors[i] for i in ids[30:60].tolist()]), 1)
    np.testing.assert_array_equal(found[:, 0], ids[30:60])
    _, found = index.search(clustered(20, seed=4), K)  # the removed vectors queried with themselves
    assert not np.isin(found, ids[:30]).any() and (found >= 0).all()

    library.remove(ids[30:50])  # 50 of 200 nodes: past COMPACT_FRACTION, so compacted after the change
    assert COMPACT_FRACTION * 200 < 50
    assert library.cache.get() is index and index.tombstones == 0 and len(index) == 150
    _, found = index.search(QUERIES, K)
    assert recall(found, library.exact_top(QUERIES)) >= 0.9


@pytest.mark.parametrize(("count", "kind"), [(30, FLAT), (80, HNSW)])
def test_save_and_load_round_trip_keeps_the_kind(library: Library, count: int, kind: str) -> None:
    ids = library.add(clustered(count, seed=5))
    library.remove(ids[:5])
    library.cache.save()
    assert read_header(library.path)["kind"] == kind
    reopened = library.open_cache()
    reopened.rebuild = None  # type: ignore[method-assign]  # a fresh file must be loaded, not rebuilt
    loaded = reopened.get()
    assert loaded.kind == kind and reopened.generation == library.cache.generation
    before, after = library.cache.get().search(QUERIES, K), loaded.search(QUERIES, K)
    np.testing.assert_array_equal(after[1], before[1])
    np.testing.assert_allclose(after[0], before[0])


@pytest.mark.parametrize(
    ("count", "saved_with", "opened_with", "becomes"), [(100, 1000, 50, HNSW), (60, 50, 1000, FLAT)]
)
def test_a_file_of_the_other_kind_is_loaded_converted_and_saved(
    library: Library, count: int, saved_with: int, opened_with: int, becomes: str
) -> None:
    """The threshold setting changed since the file was written: converted on load, no rebuild."""
    library.cache = library.open_cache(saved_with)
    library.add(clustered(count, seed=6))
    library.cache.save()
    assert read_header(library.path)["kind"] != becomes
    reopened = library.open_cache(opened_with)
    reopened.rebuild = None  # type: ignore[method-assign]
    assert reopened.get().kind == becomes and len(reopened.get()) == count
    header = read_header(library.path)
    assert header["kind"] == becomes and header["generation"] == library.store.generation()
    _, found = reopened.get().search(QUERIES, K)
    assert recall(found, library.exact_top(QUERIES)) >= 0.9


# -- property: any sequence of adds and removes ----------------------------------------------------


class _NoStore:
    """Just what IndexCache asks of a store when nothing is stored yet and every change comes through apply()."""

    def __init__(self) -> None:
        self.gen = 0

    def generation(self, collection: str = "image") -> int:
        return self.gen

    def iter_vectors(self, model_id: int, collection: str):
        return iter(())


_STEP = st.tuples(st.booleans(), st.integers(0, 40), st.integers(0, 2**32 - 1))


@settings(max_examples=25, deadline=None)
@given(steps=st.lists(_STEP, min_size=1, max_size=12), threshold=st.integers(4, 30))
def test_any_change_sequence_keeps_the_kind_rule_and_the_live_set(steps, threshold: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        _check_change_sequence(Path(folder) / "p.mmidx", steps, threshold)


def _check_change_sequence(path: Path, steps: list[tuple[bool, int, int]], threshold: int) -> None:
    store = _NoStore()
    cache = IndexCache(store, 1, IDENTITY, path, hnsw_threshold=threshold)  # type: ignore[arg-type]
    live: dict[int, np.ndarray] = {}
    kind, next_id = FLAT, 0
    for step, (adding, amount, seed) in enumerate(steps):
        rng = np.random.default_rng([seed, step])
        store.gen += 1
        if adding or not live:  # adds may re-add (replace) live ids
            fresh = np.arange(next_id, next_id + amount, dtype=np.int64)
            again = rng.choice(sorted(live), size=min(len(live), amount // 4), replace=False) if live else []
            ids = np.concatenate([fresh, np.asarray(again, dtype=np.int64)])
            vectors = stored_precision(l2_normalise(rng.standard_normal((len(ids), DIM))))  # as the store has them
            next_id += amount
            cache.apply(store.gen, ids, vectors)
            live.update(zip(ids.tolist(), vectors, strict=True))
        else:
            gone = rng.choice(sorted(live), size=min(len(live), amount), replace=False).astype(np.int64)
            cache.apply(store.gen, remove_ids=np.concatenate([gone, [10**9]]))  # an unknown id is ignored
            for key in gone.tolist():
                live.pop(key)
        kind = kind_for(len(live), kind, threshold)
        index = cache.get()
        assert index.kind == kind == cache.kind
        assert sorted(index.ids().tolist()) == sorted(live)
        if isinstance(index, HnswIndex):
            assert index.tombstones <= COMPACT_FRACTION * (len(index) + index.tombstones)
            assert len(live) >= SHRINK_FRACTION * threshold
        else:
            assert len(live) < threshold
    if live:
        keys = sorted(live)
        scores, found = cache.get().search(np.stack([live[i] for i in keys]), 1)
        np.testing.assert_array_equal(found[:, 0], keys)  # every live id answers with its latest vector
        self_scores = [float(live[i] @ live[i]) for i in keys]  # exact: |v|^2, about 1
        np.testing.assert_allclose(scores[:, 0], self_scores, rtol=1e-5)
    cache.save()
    reopened = IndexCache(store, 1, IDENTITY, path, hnsw_threshold=threshold)  # type: ignore[arg-type]
    assert reopened.get().kind == kind and sorted(reopened.get().ids().tolist()) == sorted(live)


# -- the Engine ------------------------------------------------------------------------------------


@pytest.fixture
def library_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "many"
    for seed in range(130):
        make_image(folder / f"photo_{seed:03d}.png", seed, size=(24, 16))
    return folder


def open_engine(home: Path, threshold: int | None = None) -> Engine:
    return Engine.open(home, model="fake:16", workers=1, batch_size=32, hnsw_threshold=threshold)


def _same(a: list, b: list) -> None:
    assert [(h.path, h.rank) for h in a] == [(h.path, h.rank) for h in b]
    np.testing.assert_allclose([h.score for h in a], [h.score for h in b], rtol=1e-5, atol=1e-6)


def test_engine_with_a_tiny_threshold_searches_exactly_like_a_flat_one(tmp_path: Path, library_dir: Path) -> None:
    """Every search re-scores its candidates exactly from the stored vectors, so as long as the approximate index
    finds the true top k within its window (ample here), the results equal the flat engine's, order and scores."""
    with open_engine(tmp_path / "flat") as flat, open_engine(tmp_path / "hnsw", THRESHOLD) as hnsw:
        for engine in (flat, hnsw):
            report = engine.ingest(library_dir)
            assert report.added == 130 and not report.failed
        assert flat.status().indexes["image"]["kind"] == FLAT
        status = hnsw.status()
        assert status.hnsw_threshold == THRESHOLD and status.hnsw_shrink_below == 25
        assert status.indexes["image"]["kind"] == HNSW and status.indexes["image"]["vectors"] == 130
        assert status.indexes["image"]["policy_kind"] == HNSW and status.indexes["image"]["state"] == "up to date"

        def compare() -> None:
            for seed in (0, 17, 64, 129):
                query = library_dir / f"photo_{seed:03d}.png"
                if query.exists():
                    _same(flat.search(image=query, k=10), hnsw.search(image=query, k=10))
            for text in ("photo", "a red square", "photo_017"):
                for mode in ("dense", "hybrid"):
                    _same(flat.search(text, k=10, mode=mode), hnsw.search(text, k=10, mode=mode))

        compare()
        for seed in range(0, 130, 2):  # delete half: 65 left, HNSW still (>= 25), removed in place
            (library_dir / f"photo_{seed:03d}.png").unlink()
        for engine in (flat, hnsw):
            assert engine.ingest(library_dir).removed == 65
        assert hnsw.status().indexes["image"]["kind"] == HNSW
        compare()
        paths = {hit.path for hit in hnsw.search("photo", k=200, mode="dense")}
        assert len(paths) == 65 and all(int(Path(p).stem[-3:]) % 2 == 1 for p in paths)

    with open_engine(tmp_path / "hnsw", 1000) as reopened:  # the setting changed: status says what comes next
        facts = reopened.status().indexes["image"]
        assert facts["kind"] == HNSW and facts["policy_kind"] == FLAT and "becomes faiss-flat-ip" in facts["state"]
        assert len(reopened.search("photo", k=5)) == 5
        assert reopened.status().indexes["image"]["kind"] == FLAT


@pytest.mark.parametrize("threshold", [1000, 10])  # stays flat; turns HNSW
def test_applied_float32_vectors_are_held_as_the_database_holds_them(tmp_path: Path, threshold: int) -> None:
    """Ingest hands the encoder's float32 vectors to apply(): the index keeps them at the database's precision,
    so its scores equal a rebuild's and the database's copy's, whichever kind it is."""
    library = Library(tmp_path / "image.mmidx", threshold)
    raw = l2_normalise(np.random.default_rng(5).standard_normal((30, DIM))).astype(np.float32)
    ids = np.concatenate([library.add(raw[:20]), library.add(raw[20:])])  # the second batch: into the kind reached
    assert library.cache.kind == (FLAT if threshold > 30 else HNSW)
    held = library.cache.get().vectors(ids.tolist())
    stored = library.store.image_vectors_of(library.model_id, ids.tolist())
    for key, vector in zip(ids.tolist(), raw, strict=True):
        np.testing.assert_array_equal(held[key], stored[key])
        np.testing.assert_array_equal(held[key], stored_precision(vector))
    query = raw[:5]
    applied = library.cache.get().search(query, 10)
    rebuilt = library.open_cache(threshold).rebuild().search(query, 10)
    np.testing.assert_array_equal(applied[1], rebuilt[1])
    np.testing.assert_allclose(applied[0], rebuilt[0], rtol=1e-6)
