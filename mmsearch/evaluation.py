"""``mmsearch eval``: run labelled queries in every search mode and report ranking metrics and latency."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mmsearch.errors import MmsearchError
from mmsearch.fragments import FragmentError, parse_fragment
from mmsearch.metrics import query_metrics, summarise
from mmsearch.search.hits import Hit

KS = (1, 5, 10)


class EvalFileError(MmsearchError):
    """A queries file cannot be read or has a malformed line."""


@dataclass(frozen=True)
class EvalQuery:
    """A query and the paths (or path stems, or file names) of the assets that answer it; a moment of a video or
    recording is written as a media fragment, ``clip.mp4#t=12,19`` (see :mod:`mmsearch.fragments`)."""

    text: str
    relevant: tuple[str, ...]


@dataclass
class ModeResult:
    """Mean metrics of one mode over all queries, and its query latency."""

    mode: str
    metrics: dict[str, float]
    latency_ms: dict[str, float]
    queries: int


SCHEMA_VERSION = 1


@dataclass
class EvalReport:
    k: int
    kind: str
    modes: list[ModeResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The eval document (``mmsearch/schemas/eval.json``)."""
        return {"schema_version": SCHEMA_VERSION, **asdict(self)}


def load_queries(path: str | os.PathLike[str]) -> list[EvalQuery]:
    """Read ``query<TAB>relevant[<TAB>relevant...]`` lines; blank lines, ``#`` comments and a
    ``query`` header line are skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalFileError(f"cannot read queries file {path}: {exc}") from exc
    queries = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cells = [cell.strip() for cell in line.split("\t")]
        if number == 1 and cells[0].lower() == "query":
            continue
        relevant = tuple(cell for cell in cells[1:] if cell)
        if not cells[0] or not relevant:
            raise EvalFileError(f"{path} line {number}: expected a query and at least one relevant path, tab-separated")
        for cell in relevant:
            try:
                parse_fragment(cell)
            except FragmentError as exc:
                raise EvalFileError(f"{path} line {number}: {exc}") from None
        queries.append(EvalQuery(cells[0], relevant))
    if not queries:
        raise EvalFileError(f"{path} holds no queries")
    return queries


def matched_key(path: str, relevant: Sequence[str], start: float | None = None, end: float | None = None) -> str:
    """The relevant entry a hit answers (exact path, path suffix, file name or stem; for a moment entry,
    ``clip.mp4#t=12,19``, the hit's span must also overlap it), else the hit's path."""
    name = os.path.basename(path)
    stem = os.path.splitext(name)[0]
    for entry in relevant:
        fragment = parse_fragment(entry)
        target = fragment.target
        same_file = path == target or path.endswith("/" + target.lstrip("/")) or target in (name, stem)
        if same_file and fragment.overlaps(start, end):
            return entry
    return path


SearchFn = Callable[[str, str], list[Hit]]
"""``search(query text, mode) -> hits``."""


def evaluate(search: SearchFn, queries: Sequence[EvalQuery], modes: Sequence[str], k: int, kind: str) -> EvalReport:
    """Run every query in every mode; Recall@1/5/10 (success), MRR, nDCG@10 and latency per mode."""
    report = EvalReport(k=k, kind=kind)
    for mode in modes:
        per_query, latencies = [], []
        for query in queries:
            started = time.perf_counter()
            hits = search(query.text, mode)
            latencies.append((time.perf_counter() - started) * 1000)
            ranked = [matched_key(hit.path, query.relevant, hit.start, hit.end) for hit in hits]
            per_query.append(query_metrics(ranked, query.relevant, ks=KS))
        means = summarise(per_query)
        metrics = {name: round(means[name], 4) for name in (*(f"recall@{n}" for n in KS), "mrr", "ndcg@10")}
        report.modes.append(ModeResult(mode, metrics, _latency(latencies), len(queries)))
    return report


def _latency(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "p50": round(statistics.median(ordered), 2),
        "p95": round(p95, 2),
        "mean": round(statistics.fmean(ordered), 2),
    }
