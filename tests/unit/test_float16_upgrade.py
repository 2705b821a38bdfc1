"""Migration 0007: a home written with float32 vectors (schema 0006 and an IndexFlatIP file) is upgraded on open,
keeps its vectors at float16, rebuilds its index, and ranks as it did."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from alembic import command

from mmsearch import Engine
from mmsearch.encoders.fake import FakeEncoder
from mmsearch.imageio import load_image
from mmsearch.index.faiss_index import FaissIndex, read_header
from mmsearch.store.database import alembic_config, connect
from mmsearch.store.records import SCORE_BOUND, stored_precision

MAX_PIXELS = 89_478_485
DIM = 16


def _old_flat_index(vectors_by_id: dict[int, np.ndarray]) -> FaissIndex:
    """The flat index as versions before 0007 wrote it: float32 (``IndexFlatIP``)."""
    import faiss

    index = FaissIndex(FakeEncoder(DIM).identity, faiss.IndexIDMap2(faiss.IndexFlatIP(DIM)))
    ids = np.array(sorted(vectors_by_id), dtype=np.int64)
    index.add(ids, np.stack([vectors_by_id[i] for i in ids.tolist()]))
    return index


def _make_old_home(url: str, index_file: Path, raw: dict[str, np.ndarray]) -> int:
    """Turn a fresh home into one as the old code left it: schema 0006, float32 blobs holding the encoder's
    float32 vectors, a float32 index file stamped current. Returns the image generation."""
    database = connect(url)
    with database.begin() as connection:
        command.downgrade(alembic_config(connection=connection), "0006_video")
    with database.begin() as connection:
        rows = connection.exec_driver_sql(
            "SELECT m.id, m.path, e.id FROM media_files m JOIN embeddings e ON e.content_hash = m.content_hash"
        ).all()
        for _, path, embedding_id in rows:
            blob = raw[path].astype("<f4").tobytes()
            connection.exec_driver_sql("UPDATE embeddings SET vector = ? WHERE id = ?", (blob, embedding_id))
        generation = int(
            connection.exec_driver_sql("SELECT value FROM settings WHERE key = 'index_generation'").scalar_one()
        )
    database.dispose()
    header = read_header(index_file)
    old = _old_flat_index({file_id: raw[path] for file_id, path, _ in rows})
    old.save(index_file, {"generation": generation, "model_id": header["model_id"], "collection": "image"})
    return generation


def test_an_old_float32_home_is_upgraded_and_ranks_as_before(tmp_path: Path, photo_dir: Path) -> None:
    url = f"sqlite:///{tmp_path / 'meta.db'}"
    home = tmp_path / "home"
    paths = sorted(str(p) for p in photo_dir.rglob("*") if p.is_file() and p.suffix != ".txt")
    encoder = FakeEncoder(DIM)
    raw = {path: encoder.encode_images([load_image(path, MAX_PIXELS)])[0] for path in paths}
    with Engine.open(home, model=f"fake:{DIM}", db_url=url) as engine:
        assert engine.ingest(photo_dir).added == len(paths)
        model_id = engine.store.active_model()[0]
        ids = {
            path: file_id
            for file_id, path in ((f.id, f.path) for f in engine.store.files_under(str(photo_dir)).values())
        }
        stored = engine.store.image_vectors_of(model_id, ids.values())
        for path in paths:  # the same encoder as the ingest's: today's home holds these rounded
            np.testing.assert_array_equal(stored[ids[path]], stored_precision(raw[path]))
    index_file = next(p for p in (home / "indexes").glob("index-*.mmidx") if p.stem.count("-") == 2)
    generation = _make_old_home(url, index_file, raw)
    old_size = index_file.stat().st_size

    matrix = np.stack([raw[path] for path in paths])
    with Engine.open(home, db_url=url) as engine:  # opening upgrades the schema
        assert engine.store.generation() == generation + 1  # the vectors changed: indexes are stale
        for query in paths:
            fp32 = matrix @ raw[query]
            expected = [paths[i] for i in np.argsort(-fp32, kind="stable")]
            hits = engine.search(image=query, k=len(paths))
            assert [hit.path for hit in hits] == expected
            for hit in hits:
                assert abs(hit.score - fp32[paths.index(hit.path)]) <= SCORE_BOUND
        stored = engine.store.image_vectors_of(model_id, ids.values())
        for path in paths:
            np.testing.assert_array_equal(stored[ids[path]], stored_precision(raw[path]))
    database = connect(url)
    with database.connect() as connection:
        lengths = {len(blob) for (blob,) in connection.exec_driver_sql("SELECT vector FROM embeddings")}
    database.dispose()
    assert lengths == {2 * DIM}  # float16 blobs
    assert read_header(index_file)["generation"] == generation + 1  # rebuilt from the database
    assert index_file.stat().st_size < old_size  # as float16


def test_a_float32_index_file_still_loads_and_searches(tmp_path: Path) -> None:
    """A file of the old layout is read as it is (until the upgraded database makes it stale)."""
    vectors = {i: v for i, v in enumerate(FakeEncoder(DIM).encode_texts([f"word{i} other{i}" for i in range(8)]))}
    old = _old_flat_index(vectors)
    old.save(tmp_path / "old.mmidx", {"generation": 3})
    loaded, header = FaissIndex.load(tmp_path / "old.mmidx")
    assert header["generation"] == 3 and len(loaded) == 8
    scores, found = loaded.search(vectors[5][None, :], 1)
    assert scores[0, 0] == np.float32(vectors[5] @ vectors[5])
    assert found[0, 0] == 5
    np.testing.assert_array_equal(loaded.vectors([5])[5], vectors[5])  # float32, as written


def check_vector_rows_migrate(url: str) -> None:
    """Rows at schema 0006 (float32 blobs, generations) through 0007 and back, on the database at ``url``
    (SQLite here, PostgreSQL in tests/integration/test_postgres.py)."""
    from sqlalchemy import text

    database = connect(url)
    with database.begin() as connection:
        command.upgrade(alembic_config(connection=connection), "0006_video")
    rng = np.random.default_rng(11)
    vectors = rng.standard_normal((5, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with database.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO models (id, fingerprint, name, pretrained, dim, preprocess_json, created_at) "
                "VALUES (1, 'f', 'fake', '8', 8, '{}', CURRENT_TIMESTAMP)"
            )
        )
        for number, vector in enumerate(vectors):
            connection.execute(
                text(
                    "INSERT INTO embeddings (model_id, content_hash, vector, created_at) "
                    "VALUES (1, :hash, :vector, CURRENT_TIMESTAMP)"
                ),
                {"hash": f"h{number}", "vector": vector.astype("<f4").tobytes()},
            )
        connection.execute(
            text(
                "INSERT INTO settings (key, value) VALUES ('index_generation', '4'), ('index_generation:caption', '2')"
            )
        )

    def read() -> tuple[list[bytes], dict[str, str]]:
        with database.connect() as connection:
            blobs = [bytes(row[0]) for row in connection.execute(text("SELECT vector FROM embeddings ORDER BY id"))]
            settings = dict(connection.execute(text("SELECT key, value FROM settings")).all())
        return blobs, settings

    with database.begin() as connection:
        command.upgrade(alembic_config(connection=connection), "head")
    blobs, settings = read()
    assert [len(blob) for blob in blobs] == [16] * 5
    for blob, vector in zip(blobs, vectors, strict=True):
        np.testing.assert_array_equal(np.frombuffer(blob, dtype="<f2"), vector.astype(np.float16))
    assert settings == {"index_generation": "5", "index_generation:caption": "3"}
    with database.begin() as connection:
        command.downgrade(alembic_config(connection=connection), "0006_video")
    blobs, settings = read()
    for blob, vector in zip(blobs, vectors, strict=True):
        np.testing.assert_array_equal(np.frombuffer(blob, dtype="<f4"), stored_precision(vector))
    assert settings == {"index_generation": "6", "index_generation:caption": "4"}
    database.dispose()


def test_vector_rows_migrate_to_float16_and_back_on_sqlite(tmp_path: Path) -> None:
    check_vector_rows_migrate(f"sqlite:///{tmp_path / 'rows.db'}")


def test_a_large_library_keeps_its_indexes_through_the_upgrade(tmp_path: Path) -> None:
    """Over REBUILD_LIMIT vectors (HNSW graphs by default, minutes to hours to rebuild) the generations stay:
    the indexes' float32 vectors agree with the stored float16 ones within the bound; the rows still convert."""
    from sqlalchemy import text

    database = connect(f"sqlite:///{tmp_path / 'large.db'}")
    with database.begin() as connection:
        command.upgrade(alembic_config(connection=connection), "0006_video")
        connection.execute(
            text(
                "INSERT INTO models (id, fingerprint, name, pretrained, dim, preprocess_json, created_at) "
                "VALUES (1, 'f', 'fake', '2', 2, '{}', CURRENT_TIMESTAMP)"
            )
        )
        blob = np.array([0.6, 0.8], dtype="<f4").tobytes()
        connection.execute(
            text(
                "INSERT INTO embeddings (model_id, content_hash, vector, created_at) "
                "VALUES (1, :hash, :vector, CURRENT_TIMESTAMP)"
            ),
            [{"hash": f"h{number}", "vector": blob} for number in range(50_001)],
        )
        connection.execute(text("INSERT INTO settings (key, value) VALUES ('index_generation', '4')"))
    with database.begin() as connection:
        command.upgrade(alembic_config(connection=connection), "head")
    with database.connect() as connection:
        generation = connection.execute(text("SELECT value FROM settings WHERE key = 'index_generation'")).scalar()
        lengths = set(connection.execute(text("SELECT DISTINCT length(vector) FROM embeddings")).scalars())
    database.dispose()
    assert generation == "4"
    assert lengths == {4}  # two float16 components
