import logging
import threading
from pathlib import Path

import numpy as np

from mmsearch.encoders.base import ModelIdentity
from mmsearch.search.query_cache import QueryVectorCache
from mmsearch.store.database import connect, upgrade_to_head
from mmsearch.store.repository import MetadataStore


def test_writes_are_buffered_then_flushed() -> None:
    engine = connect("sqlite://")
    upgrade_to_head(engine)
    store = MetadataStore(engine)
    model_id = store.adopt_model(ModelIdentity("fake", "2", 2))
    cache = QueryVectorCache(store, model_id, flush_every=2)
    one, two = np.array([1, 0], np.float32), np.array([0, 1], np.float32)

    cache.put({"one": one})
    assert list(cache.get(["one", "two"])) == ["one"]  # served from the buffer
    assert store.cached_query_vectors(model_id, ["one"]) == {}  # not written yet

    cache.put({"two": two})  # reaches flush_every
    assert set(store.cached_query_vectors(model_id, ["one", "two"])) == {"one", "two"}
    cache.put({"three": one})
    cache.flush()
    np.testing.assert_array_equal(store.cached_query_vectors(model_id, ["three"])["three"], one)
    cache.flush()  # nothing pending: a no-op


def file_store(tmp_path: Path) -> tuple[MetadataStore, int]:
    engine = connect(f"sqlite:///{tmp_path / 'cache.db'}")
    upgrade_to_head(engine)
    store = MetadataStore(engine)
    return store, store.adopt_model(ModelIdentity("fake", "2", 2))


def test_a_full_buffer_is_written_behind_the_query(tmp_path: Path, monkeypatch) -> None:
    store, model_id = file_store(tmp_path)
    cache = QueryVectorCache(store, model_id, flush_every=2)
    release, writers = threading.Event(), []
    original = store.cache_query_vectors

    def slow_write(model: int, vectors: dict) -> None:
        writers.append(threading.current_thread().name)
        release.wait(5)
        original(model, vectors)

    monkeypatch.setattr(store, "cache_query_vectors", slow_write)
    one, two = np.array([1, 0], np.float32), np.array([0, 1], np.float32)
    cache.put({"one": one, "two": two})  # full: handed to the writer thread, put() returns at once
    assert set(cache.get(["one", "two"])) == {"one", "two"}  # served from memory while being written
    cache.put({"three": one, "four": two})  # full again while the first write runs: waits for the next flush
    release.set()
    cache.close()
    assert set(store.cached_query_vectors(model_id, ["one", "two", "three", "four"])) == {"one", "two", "three", "four"}
    assert writers[0].startswith("mmsearch-query-cache")


def test_a_failed_write_is_logged_and_dropped(tmp_path: Path, monkeypatch, caplog) -> None:
    store, model_id = file_store(tmp_path)
    cache = QueryVectorCache(store, model_id, flush_every=1)

    def broken(model: int, vectors: dict) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(store, "cache_query_vectors", broken)
    with caplog.at_level(logging.WARNING, logger="mmsearch.search.query_cache"):
        cache.put({"one": np.array([1, 0], np.float32)})
        cache.close()  # does not raise: a cache entry is not worth failing a query or a close
    assert "could not write 1 cached query vectors: disk full" in caplog.text
