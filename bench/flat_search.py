"""Flat index search time, numpy over the mapped file (``mmsearch.index.flat_arrays``) against FAISS, one query.

    python bench/flat_search.py [--sizes 300,1500,4096,8192,50000] [--dim 256] [--repeat 20]

Prints milliseconds per single-query search (top 10) for each size, FAISS on one thread as FaissIndex runs a
single query; the numpy path is what a cold query uses for a loaded index of at most NUMPY_SEARCH_MAX vectors.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import faiss
import numpy as np

from mmsearch.index.faiss_index import NUMPY_SEARCH_MAX, float16_flat, search_threads
from mmsearch.index.flat_arrays import parse_sq_fp16


def per_search_ms(search: Callable[[], object], repeat: int) -> float:
    search()
    started = time.perf_counter()
    for _ in range(repeat):
        search()
    return (time.perf_counter() - started) / repeat * 1e3


def faiss_search(index: object, query: np.ndarray) -> None:
    with search_threads(faiss, 1):
        index.search(query, 10)  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="300,1500,4096,8192,50000")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"dim {args.dim}, top 10, one query; numpy is used up to {NUMPY_SEARCH_MAX} vectors")
    print(f"{'vectors':>8} {'faiss ms':>9} {'numpy ms':>9}")
    for size in (int(text) for text in args.sizes.split(",")):
        vectors = rng.standard_normal((size, args.dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        index = faiss.IndexIDMap2(float16_flat(faiss, args.dim))
        index.add_with_ids(vectors, np.arange(size, dtype=np.int64))
        arrays = parse_sq_fp16(faiss.serialize_index(index), args.dim)
        assert arrays is not None
        query = rng.standard_normal((1, args.dim)).astype(np.float32)
        faiss_ms = per_search_ms(partial(faiss_search, index, query), args.repeat)
        numpy_ms = per_search_ms(partial(arrays.search, query, 10), args.repeat)
        print(f"{size:>8} {faiss_ms:>9.3f} {numpy_ms:>9.3f}")


if __name__ == "__main__":
    main()
