"""The flat index file's vectors read in place and searched with numpy: a query on a flat home imports no FAISS.

The flat kind's payload is FAISS's own serialisation of ``IndexIDMap2`` over a float16 ``IndexScalarQuantizer``
(``mmsearch.index.faiss_index``); importing FAISS costs a cold query about 50-60 ms, more than searching a few
thousand vectors. :func:`parse_sq_fp16` reads that layout from a mapped file (every field checked: fourcc,
dimension, count, metric, quantiser type, code size, the lengths of the code and id arrays, and the end of the
file) and returns the id and float16 matrix views; anything else (an older ``IndexFlatIP`` file, another FAISS
version's layout, a big-endian machine) gives None and the caller reads the file with FAISS as before.

:meth:`FlatArrays.search` gives what FAISS's search gives: for each query the top ``k`` (float32 inner products
with the float16 vectors, decoded exactly, summed in float32; they may differ from FAISS's in the last bit of the
float32 sum, as the summation order differs), best first; an empty index gives id -1 with FAISS's empty score.
Where the order of two candidates could depend on that last bit (their scores closer than the rounding error of
the two sums, exact ties such as duplicate vectors included), the search says so and FAISS searches instead.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass, field

import numpy as np

FOURCC_IDMAP2 = b"IxM2"
FOURCC_SQ = b"IxSQ"
METRIC_INNER_PRODUCT = 0
QT_FP16 = 4  # faiss.ScalarQuantizer.QT_fp16
_HEADER = struct.Struct("<4siqqqBi")  # fourcc, d, ntotal, two dummies, is_trained, metric_type (write_index_header)
_SQ = struct.Struct("<iifQQ")  # qtype, rangestat, rangestat_arg, d, code_size (write_ScalarQuantizer)
_SIZE = struct.Struct("<Q")
EMPTY_SCORE = np.float32(-np.finfo(np.float32).max)  # FAISS's score for an empty inner-product slot
SCORE_CHUNK = 32768
"""Rows decoded to float32 at a time while scoring (a bounded temporary: 32 MiB at 256-d)."""


_EPS = float(np.finfo(np.float32).eps)
ROUNDING_UNITS = 16
"""How far numpy's and FAISS's float32 sums of one row may lie apart, in units of ``u * sum_i |x_i q_i|`` (u: half
of float32's epsilon): both sum in vector lanes (BLAS kernels, FAISS's SIMD code), and on the 256-d fixture model's
caption vectors with 60 real queries they were measured at most 2.8 units apart. Two candidates closer than this
on both rows leave the search to FAISS: about 7 % of those queries at a window of 100 candidates (4 % at 8 units,
33 % at the 40 units a worst-case bound for 16-lane sums would need, 93 % at the general (d + 1) eps bound)."""


@dataclass
class FlatArrays:
    """The ids and float16 vectors of a flat index file, views into its mapping (read-only)."""

    ids: np.ndarray  # (n,) int64
    codes: np.ndarray  # (n, d) float16
    _largest: float | None = field(default=None, init=False, repr=False)  # max |component|, found by the 1st search

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def decoded(self, rows: np.ndarray) -> np.ndarray:
        """The vectors at ``rows`` as float32 (a copy)."""
        return self.codes[rows].astype(np.float32)

    def scores(self, queries: np.ndarray) -> np.ndarray:
        """Inner products of every stored vector with every query row: float32, shape ``(n, queries)``."""
        out = np.empty((len(self), queries.shape[0]), dtype=np.float32)
        transposed = np.ascontiguousarray(queries.T)
        largest = 0.0
        for start in range(0, len(self), SCORE_CHUNK):
            block = self.codes[start : start + SCORE_CHUNK].astype(np.float32)
            np.matmul(block, transposed, out=out[start : start + block.shape[0]])
            if self._largest is None:
                largest = max(largest, float(np.abs(block).max(initial=0.0)))
        if self._largest is None:
            self._largest = largest
        return out

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Top-``k`` (scores, ids) per row of the float32 ``queries``, best first, as FAISS's search gives them;
        None where rounding could make FAISS's differ (two candidates' scores closer than their sums' possible
        rounding error, exact ties included: FAISS orders those by its heap), for the caller to ask FAISS."""
        n = len(self)
        scores = np.full((queries.shape[0], k), EMPTY_SCORE, dtype=np.float32)
        ids = np.full((queries.shape[0], k), -1, dtype=np.int64)
        if n == 0:
            return scores, ids
        take = min(k, n)
        every = self.scores(queries)
        for row, query in enumerate(queries):
            best = self._top(every[:, row], query, take)
            if best is None:
                return None
            scores[row, :take] = every[best, row]
            ids[row, :take] = self.ids[best]
        return scores, ids

    def _top(self, column: np.ndarray, query: np.ndarray, take: int) -> np.ndarray | None:
        """The rows of the ``take`` best scores, best first, or None when an order or the cut is uncertain."""
        assert self._largest is not None  # set by scores()
        unit = ROUNDING_UNITS * _EPS / 2
        slack = 2 * unit * self._largest * float(np.abs(query).sum())  # bounds the error on any two rows
        cut = np.partition(column, len(column) - take)[len(column) - take] if take < len(column) else -np.inf
        near = np.flatnonzero(column >= cut - slack)  # the top rows and any that rounding could swap in
        near = near[np.argsort(-column[near], kind="stable")]
        error = unit * (np.abs(self.codes[near].astype(np.float32)) @ np.abs(query))
        error += query.size * np.finfo(np.float32).tiny  # products that underflow
        ranked = column[near]
        if np.any(ranked[: take - 1] - ranked[1:take] <= error[: take - 1] + error[1:take]):
            return None  # an order inside the top is uncertain (adjacent pairs suffice: the gaps add up)
        if np.any(ranked[take - 1] - ranked[take:] <= error[take - 1] + error[take:]):
            return None  # the cut is uncertain
        return near[:take]


def parse_sq_fp16(buffer: np.ndarray, dim: int) -> FlatArrays | None:
    """The arrays of ``buffer`` (uint8, the payload to the file's end) when it is exactly a FAISS ``IndexIDMap2``
    over a ``dim``-wide inner-product fp16 ``IndexScalarQuantizer``, else None (read it with FAISS)."""
    if sys.byteorder != "little":
        return None
    data = memoryview(buffer.data)
    try:
        count, position = _index_header(data, 0, FOURCC_IDMAP2, dim)
        inner, position = _index_header(data, position, FOURCC_SQ, dim)
        qtype, _, _, sq_dim, code_size = _SQ.unpack_from(data, position)
        position += _SQ.size
        trained, position = _length(data, position)
        if qtype != QT_FP16 or sq_dim != dim or code_size != 2 * dim or trained != 0 or inner != count:
            return None
        code_bytes, position = _length(data, position)
        codes_at = position
        position += code_bytes
        id_count, position = _length(data, position)
    except struct.error:  # truncated
        return None
    if code_bytes != count * code_size or id_count != count or position + 8 * count != len(buffer):
        return None
    codes = buffer[codes_at : codes_at + code_bytes].view(np.float16).reshape(count, dim)
    return FlatArrays(buffer[position:].view(np.int64), codes)


def _index_header(data: memoryview, position: int, fourcc: bytes, dim: int) -> tuple[int, int]:
    """The vector count of the index header at ``position`` and where it ends; struct.error when it is not one
    of ``fourcc`` over ``dim``-d inner-product vectors, trained."""
    name, d, ntotal, _, _, trained, metric = _HEADER.unpack_from(data, position)
    if name != fourcc or d != dim or ntotal < 0 or trained != 1 or metric != METRIC_INNER_PRODUCT:
        raise struct.error(f"not the expected {fourcc!r} header")
    return ntotal, position + _HEADER.size


def _length(data: memoryview, position: int) -> tuple[int, int]:
    (size,) = _SIZE.unpack_from(data, position)
    return size, position + _SIZE.size
