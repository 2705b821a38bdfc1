import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mmsearch.encoders.base import ModelIdentity
from mmsearch.errors import ModelMismatchError
from mmsearch.store.database import connect, upgrade_to_head
from mmsearch.store.records import (
    COSINE_BOUND,
    FileRecord,
    VectorRangeError,
    embedding_from_bytes,
    embedding_to_bytes,
    stored_precision,
    vector_from_bytes,
    vector_to_bytes,
)
from mmsearch.store.repository import MetadataStore

IDENTITY = ModelIdentity("fake", "4", 4, {"thumbnail": 8})


@pytest.fixture
def store() -> MetadataStore:
    engine = connect("sqlite://")
    upgrade_to_head(engine)
    return MetadataStore(engine)


@given(arrays(np.float32, st.integers(1, 64), elements=st.floats(allow_nan=False, width=32)))
def test_vector_bytes_round_trip(vector: np.ndarray) -> None:
    """The query cache's encoding: float32, exact."""
    np.testing.assert_array_equal(vector_from_bytes(vector_to_bytes(vector)), vector)


UNIT_COMPONENTS = st.floats(-1, 1, width=32)


@given(arrays(np.float32, st.integers(1, 512), elements=UNIT_COMPONENTS))
def test_embedding_bytes_are_float16_and_within_the_stated_bound(vector: np.ndarray) -> None:
    """The embeddings table's encoding: 2 bytes a component; the vector comes back as float32, each component
    the nearest float16 (relative error <= 2^-11, absolute <= 2^-25 below float16's normal range), and stable:
    a stored vector stored again is the same bytes."""
    data = embedding_to_bytes(vector)
    assert len(data) == 2 * vector.size
    back = embedding_from_bytes(data)
    assert back.dtype == np.float32 and back.shape == vector.shape
    np.testing.assert_array_equal(back, vector.astype(np.float16).astype(np.float32))
    assert np.all(np.abs(back - vector) <= np.abs(vector) * 2**-11 + 2**-25)
    assert embedding_to_bytes(back) == data
    np.testing.assert_array_equal(stored_precision(vector), back)


@given(arrays(np.float32, st.integers(2, 512), elements=st.floats(-10, 10, width=32)))
def test_a_stored_unit_vector_keeps_its_direction(vector: np.ndarray) -> None:
    """The agreement bound with the float32 vector: cosine >= COSINE_BOUND, any unit-query score within 2^-11."""
    norm = float(np.linalg.norm(vector.astype(np.float64)))
    assume(norm > 1e-3)
    unit = (vector / norm).astype(np.float32)
    back = embedding_from_bytes(embedding_to_bytes(unit))
    cosine = float(back.astype(np.float64) @ unit / (np.linalg.norm(back.astype(np.float64)) * np.linalg.norm(unit)))
    assert cosine >= COSINE_BOUND
    assert float(np.linalg.norm(back.astype(np.float64) - unit)) <= 2**-11 + 1e-6


def test_vectors_float16_cannot_hold_are_refused() -> None:
    with pytest.raises(VectorRangeError):
        embedding_to_bytes(np.array([1.0, 70000.0], dtype=np.float32))
    with pytest.raises(VectorRangeError):
        stored_precision(np.array([np.nan], dtype=np.float32))


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1),
            arrays(np.float32, 4, elements=st.floats(-1, 1, width=32)),
        ),
        min_size=1,
        max_size=8,
        unique_by=lambda item: item[0],
    )
)
def test_files_and_vectors_round_trip_through_the_database(items) -> None:
    engine = connect("sqlite://")
    upgrade_to_head(engine)
    store = MetadataStore(engine)
    model_id = store.adopt_model(IDENTITY)
    records = [FileRecord(f"/root/{name}", "image", i, i * 10, f"h{i}", 3, 2) for i, (name, _) in enumerate(items)]
    vectors = {f"h{i}": vector for i, (_, vector) in enumerate(items)}
    ids, _ = store.write_files(model_id, records, vectors)
    known = store.files_under("/root")
    assert {k.path for k in known.values()} == {r.path for r in records}
    stored = dict(zip(*_all_vectors(store, model_id), strict=True))
    for file_id, (_, vector) in zip(ids, items, strict=True):  # the stated contract: float16, handed out as float32
        assert stored[file_id].dtype == np.float32
        np.testing.assert_array_equal(stored[file_id], stored_precision(vector))
        assert np.all(np.abs(stored[file_id] - vector) <= np.abs(vector) * 2**-11 + 2**-25)
    engine.dispose()


def test_a_batch_of_new_files_is_inserted_in_one_statement_with_each_id_its_own(store: MetadataStore) -> None:
    """The ingest's commit thread writes batches of ~30 new photos: one executemany for the rows (an INSERT ...
    RETURNING in parameter order ran one statement per row on SQLite), and every path gets its own row's id, in
    the order of the records, also for a batch mixing new and known files."""
    from sqlalchemy import event

    model_id = store.adopt_model(IDENTITY)
    first = [FileRecord(f"/root/{i:02d}.jpg", "image", i, i, f"h{i}", 3, 2) for i in range(30)]
    inserts: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO MEDIA_FILES"):
            inserts.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    ids, _ = store.write_files(model_id, first, {})
    assert len(inserts) == 1
    mixed = [*reversed(first[20:]), *(FileRecord(f"/root/new{i}.jpg", "image", i, i, f"n{i}", 3, 2) for i in range(5))]
    mixed_ids, _ = store.write_files(model_id, mixed, {})
    event.remove(store.engine, "before_cursor_execute", count)
    by_path = {known.path: known.id for known in store.files_under("/root").values()}
    assert ids == [by_path[record.path] for record in first] and len(set(ids)) == 30
    assert mixed_ids == [by_path[record.path] for record in mixed] and len(by_path) == 35


def _all_vectors(store: MetadataStore, model_id: int):
    ids, vectors = [], []
    for chunk_ids, chunk_vectors in store.iter_file_vectors(model_id):
        ids.extend(chunk_ids.tolist())
        vectors.extend(chunk_vectors)
    return ids, vectors


def test_adopt_model_refuses_a_second_model(store: MetadataStore) -> None:
    first = store.adopt_model(IDENTITY)
    assert store.adopt_model(IDENTITY) == first
    assert store.active_model() == (first, IDENTITY)
    with pytest.raises(ModelMismatchError, match="refusing to mix"):
        store.adopt_model(ModelIdentity("fake", "4", 4, {"thumbnail": 16}))


def test_generation_counts_changes_and_garbage_is_collected(store: MetadataStore) -> None:
    model_id = store.adopt_model(IDENTITY)
    assert store.generation() == 0
    ids, generation = store.write_files(
        model_id, [FileRecord("/p/a.jpg", "image", 1, 1, "h1")], {"h1": np.ones(4, np.float32)}
    )
    assert generation == 1 == store.generation()
    assert store.hashes_with_vectors(model_id, ["h1", "h2"]) == {"h1"}
    deleted = store.delete_files(ids)
    assert deleted.generations == {"image": 2, "caption": 1, "transcript": 1} and deleted.removed_texts == {}
    assert store.collect_garbage(model_id) == 1
    assert store.hashes_with_vectors(model_id, ["h1"]) == set()


def test_files_under_is_a_folder_prefix_not_a_string_prefix(store: MetadataStore) -> None:
    model_id = store.adopt_model(IDENTITY)
    records = [FileRecord(p, "image", 1, 1, p) for p in ("/a/x.jpg", "/a/b/y.jpg", "/ab/z.jpg", "/a_%/w.jpg")]
    store.write_files(model_id, records, {p.path: np.ones(4, np.float32) for p in records})
    assert set(store.files_under("/a")) == {"/a/x.jpg", "/a/b/y.jpg"}
    assert set(store.files_under("/a_%")) == {"/a_%/w.jpg"}


def test_query_cache_round_trip(store: MetadataStore) -> None:
    model_id = store.adopt_model(IDENTITY)
    vector = np.array([0.5, 0.5, 0.5, 0.5], np.float32)
    store.cache_query_vectors(model_id, {"a dog": vector})
    store.cache_query_vectors(model_id, {"a dog": vector})  # storing twice is fine
    cached = store.cached_query_vectors(model_id, ["a dog", "a cat"])
    assert list(cached) == ["a dog"]
    np.testing.assert_array_equal(cached["a dog"], vector)


def test_query_cache_evicts_the_oldest_entries(store: MetadataStore, monkeypatch) -> None:
    import mmsearch.store.writes as writes

    monkeypatch.setattr(writes, "QUERY_CACHE_LIMIT", 3)
    model_id = store.adopt_model(IDENTITY)
    for i in range(5):
        store.cache_query_vectors(model_id, {f"q{i}": np.full(4, i, np.float32)})
    assert sorted(store.cached_query_vectors(model_id, [f"q{i}" for i in range(5)])) == ["q2", "q3", "q4"]
