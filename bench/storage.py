#!/usr/bin/env python3
"""Storage benchmark: bytes per image of a home, per component, against the target (issue 13: <= 1.5x rclip).

Run from the repository root::

    source scripts/venv.sh && source scripts/fixture-env.sh && python bench/storage.py
    python bench/storage.py --sizes 300,700 --json
    python bench/storage.py --no-agreement      # sizes only (skips encoding the DEV photos and captions)
    python bench/storage.py --baseline /tmp/main  # also the homes another checkout's mmsearch writes (A/B)

``--baseline DIR`` ingests the same folders with the ``mmsearch`` package of another source tree (``DIR`` on
``PYTHONPATH``, e.g. ``git -C <repo> archive main | tar x -C /tmp/main``) and prints its totals beside.

1. sizes: for each N of ``--sizes``, the whole ``mmsearch ingest`` command (a fresh process, as a user runs it)
   into a fresh home over the first N photos of DEV + train (symlinked), then every file of the home is
   counted: the SQLite database split by table with SQLite's ``dbstat`` (vectors, files, the FTS5 keyword
   tables, the query cache, the rest, free pages), its WAL, the vector index files and the Tantivy keyword
   index. The per-model ONNX text export (``indexes/text-onnx/``, ~90 MB once per home for the fixture) is
   left out and shown on its own line: it is a copy of the model, not storage per image.
   Per vector: the ``embeddings`` table with its unique index per stored vector, and the image index
   file per indexed vector.
2. agreement (``--agreement``, the default): exactness is measured on embeddings. The DEV photos are
   encoded in float32 with the fixture model (open_clip, torch); each vector's stored form
   (``mmsearch.store.records``: float16) must have cosine >= 0.9999 with it; for every DEV caption as a
   query, the top-10 through the float16 flat FAISS index built from the stored vectors is compared with
   the float32 top-10: every score within 2^-11 of its float32 score, the same set for >= 99 % of the
   queries, and where a set differs, only by near-ties (each result's float32 score within 2 x 2^-11 of
   float32's 10th; their order can flip when each score moves by up to 2^-11). Identical order is reported.

The target is rclip's 1,638 bytes per image (measured in issue 13 on the same 700 photos) x 1.5 = 2,457.
Sizes do not depend on the machine's load; the agreement pass takes about a minute on 2 busy cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    DEV_CAPTIONS,
    DEV_IMAGES,
    FIXTURE_MODEL,
    Row,
    all_passed,
    emit,
    log,
    repo_path,
    use_offline_fixture,
)

RCLIP_BYTES_PER_IMAGE = 1638
TARGET_RATIO = 1.5
TARGET_SIZE = 700
TEXT_EXPORT = "text-onnx"
MAX_PIXELS = 89_478_485  # the engine's default decompression-bomb limit

TABLE_GROUPS = (
    ("vectors (embeddings table + its unique index)", ("embeddings", "sqlite_autoindex_embeddings")),
    ("files (media_files + its indexes)", ("media_files", "sqlite_autoindex_media_files", "ix_media_files")),
    ("FTS5 keyword tables (search_fts_*)", ("search_fts",)),
    ("query cache", ("query_cache", "sqlite_autoindex_query_cache")),
    ("text items (+ indexes)", ("text_items", "ix_text_items")),
)
OTHER_TABLES = "other tables (schema, models, settings, failures; a page each)"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="300,700", help="photo counts, comma-separated (default 300,700)")
    parser.add_argument("--model", default=FIXTURE_MODEL, help=f"encoder (default {FIXTURE_MODEL})")
    parser.add_argument("--agreement", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--baseline", type=Path, help="a source tree whose mmsearch also ingests (A/B)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    args.sizes = [int(item) for item in args.sizes.split(",") if item]
    return args


def photo_folder(scratch: Path, size: int) -> Path:
    """The first ``size`` photos of DEV then train, symlinked into one folder."""
    folder = scratch / f"photos-{size}"
    folder.mkdir()
    dev = repo_path(DEV_IMAGES)
    sources = sorted(dev.iterdir()) + sorted(dev.parents[1].glob("train/images/*"))
    if len(sources) < size:
        raise SystemExit(f"only {len(sources)} photos in DEV + train, fewer than {size}")
    for source in sources[:size]:
        (folder / source.name).symlink_to(source)
    return folder


def ingest(home: Path, folder: Path, model: str, source: Path | None = None) -> None:
    """``mmsearch ingest`` in a fresh process; with ``source``, that tree's mmsearch package."""
    command = [sys.executable, "-m", "mmsearch", "--home", str(home), "--model", model, "ingest", str(folder)]
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source.resolve()), env.get("PYTHONPATH")]))
    # run outside the checkout: "-m" puts the working folder first on sys.path, before PYTHONPATH
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=folder.parent)
    if done.returncode != 0:
        raise SystemExit(f"mmsearch ingest failed: {done.stderr[-2000:]}")


def database_parts(path: Path) -> tuple[dict[str, int], int, int]:
    """Bytes per component of the SQLite file (``dbstat``), and the stored vectors and their bytes."""
    # immutable: read without a lock, so no -wal/-shm files appear beside a database that has none
    connection = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        pages = connection.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        free = connection.execute("PRAGMA freelist_count").fetchone()[0] * page_size
        vectors = connection.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
    finally:
        connection.close()
    parts: dict[str, int] = {label: 0 for label, _ in TABLE_GROUPS}
    parts[OTHER_TABLES] = 0
    for name, size in pages:
        label = next((label for label, prefixes in TABLE_GROUPS if name.startswith(prefixes)), OTHER_TABLES)
        parts[label] += int(size)
    parts["free pages"] = free
    return parts, vectors, parts[TABLE_GROUPS[0][0]]


def home_parts(home: Path) -> dict[str, Any]:
    """Every file of the home, by component (bytes), the text export apart."""
    files = [path for path in home.rglob("*") if path.is_file()]
    database = home / "mmsearch.db"
    parts, vectors, vector_bytes = database_parts(database)
    counted = {database}
    parts["database WAL and shared memory"] = sum(p.stat().st_size for p in files if p.name.startswith("mmsearch.db-"))
    counted.update(p for p in files if p.name.startswith("mmsearch.db-"))
    image_index = [p for p in files if p.suffix == ".mmidx" and p.stem.count("-") == 2]
    parts["image vector index (.mmidx)"] = sum(p.stat().st_size for p in image_index)
    others = [p for p in files if p.suffix == ".mmidx" and p not in image_index]
    parts["other collections' index files (empty)"] = sum(p.stat().st_size for p in others)
    tantivy = [p for p in files if any(part.endswith(".tantivy") for part in p.parts)]
    parts["Tantivy keyword index"] = sum(p.stat().st_size for p in tantivy)
    export = [p for p in files if TEXT_EXPORT in p.parts]
    counted.update(image_index + others + tantivy + export)
    parts["other home files"] = sum(p.stat().st_size for p in files if p not in counted)
    file_total = sum(p.stat().st_size for p in files if p not in export)
    if sum(parts.values()) - file_total != 0:
        raise SystemExit(f"components ({sum(parts.values())}) do not add up to the files ({file_total})")
    index_vectors = _indexed(image_index[0]) if image_index else 0
    return {
        "parts": parts,
        "total": file_total,
        "excluded_text_export": sum(p.stat().st_size for p in export),
        "vectors": vectors,
        "vector_bytes": vector_bytes,
        "index_vectors": index_vectors,
        "index_bytes": parts["image vector index (.mmidx)"],
    }


def _indexed(path: Path) -> int:
    from mmsearch.index.faiss_index import read_header

    return int(read_header(path)["count"])


def measure_size(scratch: Path, size: int, model: str, source: Path | None = None) -> dict[str, Any]:
    folder = scratch / f"photos-{size}"
    if not folder.is_dir():
        photo_folder(scratch, size)
    home = scratch / f"home-{size}{'-baseline' if source else ''}"
    log(f"ingesting {size} photos into a fresh home{f' with {source}' if source else ''} ...")
    ingest(home, folder, model, source)
    result = home_parts(home)
    shutil.rmtree(home, ignore_errors=True)
    return result


def encode_dev(model: str) -> tuple[np.ndarray, np.ndarray, int]:
    """The DEV photos and captions encoded in float32 by open_clip (torch): (images, captions, photos)."""
    from query_cold import read_captions

    from mmsearch.encoders import create_encoder
    from mmsearch.imageio import load_image

    log("agreement: encoding the DEV photos and captions in float32 ...")
    encoder = create_encoder(model, "cpu", "fp32", "torch")
    paths = sorted(repo_path(DEV_IMAGES).iterdir())
    batches = [paths[i : i + 32] for i in range(0, len(paths), 32)]
    images = np.concatenate([encoder.encode_images([load_image(str(p), MAX_PIXELS) for p in b]) for b in batches])
    captions = read_captions(repo_path(DEV_CAPTIONS))
    queries = np.concatenate([encoder.encode_texts(captions[i : i + 256]) for i in range(0, len(captions), 256)])
    return images.astype(np.float32), queries.astype(np.float32), len(paths)


def agreement(model: str) -> dict[str, Any]:
    """float32 DEV vectors against their stored form: worst cosine; top-10 per DEV caption, float32 vs the
    float16 flat index built from the stored vectors."""
    from mmsearch.identity import ModelIdentity
    from mmsearch.index.faiss_index import FaissIndex
    from mmsearch.store.records import SCORE_BOUND, embedding_from_bytes, embedding_to_bytes

    images, queries, photos = encode_dev(model)
    stored = np.stack([embedding_from_bytes(embedding_to_bytes(v)) for v in images])
    cosines = np.sum(stored * images, axis=1) / (np.linalg.norm(stored, axis=1) * np.linalg.norm(images, axis=1))
    index = FaissIndex(ModelIdentity(model, None, images.shape[1], {}))
    index.add(np.arange(len(stored)), stored)
    scores, found = index.search(queries, 10)
    exact = queries @ images.T
    reference = np.argsort(-exact, axis=1, kind="stable")[:, :10]
    fp32_scores = np.take_along_axis(exact, found, axis=1)
    tenth = np.take_along_axis(exact, reference[:, -1:], axis=1)[:, 0]
    # A differing top-10 is still right when what it holds instead are near-ties: float32 scores within
    # twice the score bound of float32's own 10th (their order can flip when each moves by up to the bound).
    near_ties = fp32_scores.min(axis=1) >= tenth - 2 * SCORE_BOUND
    pairs = list(zip(found.tolist(), reference.tolist(), strict=True))
    return {
        "images": photos,
        "queries": len(queries),
        "worst_cosine": float(cosines.min()),
        "mean_cosine": float(cosines.mean()),
        "top10_same_set": float(np.mean([set(a) == set(b) for a, b in pairs])),
        "top10_same_order": float(np.mean([a == b for a, b in pairs])),
        "max_score_difference": float(np.abs(scores - fp32_scores).max()),
        "top10_right_up_to_near_ties": float(np.mean(near_ties)),
    }


def size_rows(size: int, result: dict[str, Any]) -> list[Row]:
    """Bytes per image per component, the total against the target (at TARGET_SIZE), bytes per vector."""
    target = RCLIP_BYTES_PER_IMAGE * TARGET_RATIO
    rows = [
        Row(f"{size} photos: {label}", round(value / size), "bytes/image") for label, value in result["parts"].items()
    ]
    per_image = result["total"] / size
    passed = per_image <= target if size == TARGET_SIZE else None
    goal = f"<= {target:,.0f} (1.5x rclip's {RCLIP_BYTES_PER_IMAGE:,})" if size == TARGET_SIZE else ""
    rows.append(Row(f"{size} photos: TOTAL per image", round(per_image), "bytes/image", goal, passed))
    rows.append(Row(f"{size} photos: ratio to rclip", round(per_image / RCLIP_BYTES_PER_IMAGE, 2), "x"))
    rows.append(Row(f"{size} photos: home total (text export excluded)", result["total"], "bytes"))
    rows.append(Row(f"{size} photos: text export, excluded", result["excluded_text_export"], "bytes"))
    return rows + vector_rows(f"{size} photos", result)


def vector_rows(label: str, result: dict[str, Any]) -> list[Row]:
    rows = []
    if result["vectors"]:
        per_vector = round(result["vector_bytes"] / result["vectors"])
        rows.append(Row(f"{label}: database bytes per stored vector", per_vector, "bytes"))
    if result["index_vectors"]:
        per_indexed = round(result["index_bytes"] / result["index_vectors"])
        rows.append(Row(f"{label}: index file bytes per indexed vector", per_indexed, "bytes"))
    return rows


def agreement_rows(agreed: dict[str, Any]) -> list[Row]:
    from mmsearch.store.records import COSINE_BOUND, SCORE_BOUND

    worst, near, same_set = agreed["worst_cosine"], agreed["top10_right_up_to_near_ties"], agreed["top10_same_set"]
    largest = agreed["max_score_difference"]
    return [
        Row(
            f"stored vs float32, worst cosine ({agreed['images']} DEV photos)",
            f"{worst:.8f}",
            "",
            f">= {COSINE_BOUND}",
            worst >= COSINE_BOUND,
        ),
        Row("stored vs float32, mean cosine", f"{agreed['mean_cosine']:.9f}", ""),
        Row(
            f"top-10 = float32's up to near-ties ({agreed['queries']} DEV captions)",
            f"{near:.4f}",
            "",
            "1.0",
            near == 1.0,
        ),
        Row("top-10 set identical", f"{same_set:.4f}", "", ">= 0.99", same_set >= 0.99),
        Row("top-10 order identical", f"{agreed['top10_same_order']:.4f}", ""),
        Row("largest score difference", f"{largest:.2e}", "", f"<= {SCORE_BOUND:.2e}", largest <= SCORE_BOUND),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    use_offline_fixture()
    scratch = Path(tempfile.mkdtemp(prefix="mmsearch-bench-storage-"))
    try:
        sizes = {size: measure_size(scratch, size, args.model) for size in args.sizes}
        baseline = {
            size: measure_size(scratch, size, args.model, args.baseline) for size in args.sizes if args.baseline
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    agreed = agreement(args.model) if args.agreement else None
    payload = {
        "benchmark": "storage",
        "config": {"sizes": args.sizes, "model": args.model, "baseline": str(args.baseline or "")},
        "results": {"sizes": sizes, "agreement": agreed, "baseline": baseline},
        "notes": [
            "bytes are the files of a fresh home after `mmsearch ingest` (the per-model text export excluded)",
            f"target: {TARGET_RATIO}x rclip's {RCLIP_BYTES_PER_IMAGE} bytes per image at {TARGET_SIZE} photos",
        ],
    }
    rows = [row for size, result in sizes.items() for row in size_rows(size, result)]
    rows += agreement_rows(agreed) if agreed else []
    for size, result in baseline.items():
        total = round(result["total"] / size)
        rows.append(Row(f"baseline {args.baseline}: {size} photos, TOTAL per image", total, "bytes/image"))
        rows += vector_rows(f"baseline: {size} photos", result)
    emit(rows, payload, args.json)
    return 1 if args.strict and not all_passed(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
