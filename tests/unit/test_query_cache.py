import numpy as np

from mmsearch.encoders.base import ModelIdentity
from mmsearch.query_cache import QueryVectorCache
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
