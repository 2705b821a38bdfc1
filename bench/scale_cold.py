"""The cold-query part of ``bench/scale.py``: a home of N image items, then ``mmsearch query`` as new processes.

The home: the DEV photos and captions ingested with the fixture model (which writes the verified ONNX export of
the text tower, so a query needs no torch), then synthetic image items (a DEV photo's vector plus noise) written
to the database up to N, as ``bench/query_cold.py`` does. The image index is then built as HNSW (the kind the
policy picks past 50k) and saved where the engine looks for it. Building a 1M-vector graph with the engine's
``efConstruction`` (80) takes hours on a busy 2-core machine, so the bench builds it with ``--ef-construction``
(default 16): the file and its layout (M = 32, full vectors) are those of the default, only the graph's recall is
lower; what a cold query pays to load and search it is what is measured here.

Measured: wall time of ``mmsearch --home H query TEXT --json --no-service`` (new process each, distinct texts
never queried before), and in-process the image index load as before (copied into memory, the id map built:
the loader of the previous release) and after (``HnswIndex.load``: mapped in place).
"""

from __future__ import annotations

import hashlib
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import DEV_CAPTIONS, DEV_IMAGES, FIXTURE_MODEL, Row, log, repo_path
from query_cold import ab_queries, child_summary, compile_sources, read_captions

COLD_TARGET_S = 1.0


def build_home(home: Path, items: int, ef_construction: int) -> dict[str, Any]:
    from mmsearch import Engine
    from mmsearch.index.hnsw_index import HnswIndex
    from mmsearch.kinds import COLLECTIONS, IMAGE
    from mmsearch.store.lookups import generation_key

    marker = home / ".complete"
    if marker.is_file():
        return {"reused": True}
    started = time.perf_counter()
    with Engine.open(home, model=FIXTURE_MODEL, device="cpu") as engine:
        log(f"ingesting the DEV photos into {home} ...")
        engine.ingest(repo_path(DEV_IMAGES), captions=[repo_path(DEV_CAPTIONS)])
        model_id, identity = engine.store.active_model()
        real = np.concatenate([vectors for _, vectors in engine.store.iter_vectors(model_id, IMAGE)])
        extra = items - len(real)
        log(f"adding {extra} synthetic image items ...")
        _add_synthetic(home / "mmsearch.db", model_id, real, max(extra, 0))
        engine.store.set_setting(generation_key(IMAGE), str(engine.store.generation(IMAGE) + 1))
        log(f"building the HNSW graph of {items} vectors (efConstruction {ef_construction}) ...")
        built = time.perf_counter()
        index = HnswIndex(identity, ef_construction=ef_construction)
        for ids, vectors in engine.store.iter_vectors(model_id, IMAGE, batch=50_000):
            index.add(ids, vectors)
        cache = engine.models.index_cache(model_id, identity, IMAGE)
        cache._index, cache.generation = index, engine.store.generation(IMAGE)
        cache.save()
        graph_s = time.perf_counter() - built
        for collection in COLLECTIONS[1:]:
            engine.models.index_cache(model_id, identity, collection).rebuild()
        keywords = engine._tantivy()  # the Tantivy index of every text and file name
        if keywords is not None:
            keywords.rebuild(engine.store.generations(COLLECTIONS))
    marker.touch()
    return {"reused": False, "build_s": round(time.perf_counter() - started), "graph_s": round(graph_s)}


def _add_synthetic(database: Path, model_id: int, real: np.ndarray, count: int) -> None:
    """``count`` image items straight into SQLite (the engine's own writes take an hour for 1M on a busy 2-core
    machine): vectors = a real photo's vector plus noise, normalised."""
    import sqlite3

    from mmsearch.store.records import embedding_to_bytes

    rng = np.random.default_rng(0)
    connection = sqlite3.connect(database)
    with connection:
        for start in range(0, count, 20_000):
            size = min(20_000, count - start)
            vectors = real[rng.integers(len(real), size=size)] + rng.normal(0, 0.05, (size, real.shape[1]))
            vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
            digests = [
                hashlib.blake2b(f"synthetic {start + i}".encode(), digest_size=32).hexdigest() for i in range(size)
            ]
            connection.executemany(
                "INSERT INTO embeddings (model_id, content_hash, vector, created_at) VALUES (?, ?, ?, '2026-01-01')",
                ((model_id, digest, embedding_to_bytes(v)) for digest, v in zip(digests, vectors, strict=True)),
            )
            connection.executemany(
                "INSERT INTO media_files (path, kind, size, mtime_ns, content_hash, width, height, created_at, "
                "updated_at) VALUES (?, 'image', 1, 0, ?, 640, 480, '2026-01-01', '2026-01-01')",
                ((f"/synthetic/{start + i:07d}.jpg", digest) for i, digest in enumerate(digests)),
            )
    connection.close()


def copying_load(path: Path) -> Any:
    """The loader before this change: the whole graph read into memory, the id map built and checked."""
    from mmsearch.index.faiss_index import open_index_file, read_exact, read_faiss

    with open_index_file(path) as (header, handle):
        nodes = int(header["hnsw"]["nodes"])
        labels = np.frombuffer(read_exact(handle, nodes * 8, path), dtype="<i8").astype(np.int64)
        graph = read_faiss(handle, path)
    live = np.flatnonzero(labels >= 0)
    assert len(np.unique(labels[live])) == len(live)
    positions = dict(zip(labels[live].tolist(), live.tolist(), strict=True))
    return graph, positions


def load_times(home: Path, runs: int = 3) -> dict[str, float]:
    """In-process image index load, before and after (median of ``runs``, file in the page cache)."""
    from mmsearch.index.hnsw_index import HnswIndex

    files = [p for p in (home / "indexes").glob("index-*.mmidx") if not p.stem.endswith(("-caption", "-transcript"))]
    path = max(files, key=lambda p: p.stat().st_size)
    out: dict[str, Any] = {"file_mb": round(path.stat().st_size / 1e6)}
    for label, load in (("before_copy_s", copying_load), ("after_mapped_s", HnswIndex.load)):
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            loaded = load(path)
            samples.append(time.perf_counter() - started)
            del loaded
        out[label] = round(statistics.median(samples), 3)
    return out


def cold_section(
    work: Path, sizes: list[int], runs: int, before_src: str | None = None, ef_construction: int = 16
) -> tuple[list[Row], dict]:
    """Per size: build (or reuse) the home, time the index loads and the cold queries; with ``before_src`` (a
    source tree of the previous release, e.g. ``git archive main``) the cold queries of that code too, the two
    alternating query by query (``query_cold.ab_queries``; both trees byte-compiled first)."""
    import os

    rows: list[Row] = []
    payload: dict[str, Any] = {}
    texts = read_captions(repo_path(DEV_CAPTIONS))
    rng = np.random.default_rng(int(time.time()))
    compile_sources(None, before_src)
    for count in sizes:
        home = work / f"cold-{count}"
        built = build_home(home, count, ef_construction)
        loads = load_times(home)
        picks = [texts[i] for i in rng.permutation(len(texts))[: 2 * runs]]
        sides = ab_queries(home, picks if before_src else picks[:runs], dict(os.environ), before_src)
        after, before = child_summary(sides["after"]), child_summary(sides["before"]) if before_src else None
        entry = {
            "items": count,
            "home": built,
            "index_load": loads,
            "cold_query_s": after,
            "cold_query_before_s": before,
        }
        payload[str(count)] = entry
        label = f"{count:,} items"
        rows += [
            Row(f"image index load before (copied), {label} ({loads['file_mb']} MB)", loads["before_copy_s"], "s"),
            Row(f"image index load after (mapped), {label}", loads["after_mapped_s"], "s"),
            Row(
                f"cold `mmsearch query` p50, {label}",
                after["p50_s"],
                "s",
                f"<= {COLD_TARGET_S} s" if count >= 1_000_000 else "",
                after["p50_s"] <= COLD_TARGET_S if count >= 1_000_000 else None,
            ),
            Row(f"cold `mmsearch query` max, {label}", after["max_s"], "s"),
            Row(
                f"cold `mmsearch query` CPU p50 / peak RSS p50, {label}",
                f"{after['cpu_p50_s']} s / {after['rss_p50_mb']} MB",
            ),
        ]
        if before:
            rows += [
                Row(f"cold `mmsearch query` p50 before (--before-src), {label}", before["p50_s"], "s"),
                Row(
                    f"  before: CPU p50 / peak RSS p50, {label}", f"{before['cpu_p50_s']} s / {before['rss_p50_mb']} MB"
                ),
            ]
    return rows, payload
