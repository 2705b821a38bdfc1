"""The evidence a hybrid search gathers per asset, and the pure helpers that read it into hits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from mmsearch.index.base import VectorIndex
from mmsearch.kinds import CAPTION, IMAGE, KEYWORD, TRANSCRIPT
from mmsearch.search.fusion import Ranked
from mmsearch.search.hits import Hit
from mmsearch.search.query import QuerySpec
from mmsearch.store.keyword import KeywordMatch
from mmsearch.store.records import StoredFile, StoredText

Scores = dict[int, tuple[float, int | None]]
"""Asset id -> (score, best item id or None)."""


@dataclass
class Evidence:
    """Per retriever: asset id -> (score, best item id or None)."""

    scores: dict[str, Scores] = field(default_factory=dict)

    def ranked(self) -> dict[str, Ranked]:
        return {
            name: sorted(((a, s) for a, (s, _) in entries.items()), key=lambda e: (-e[1], e[0]))
            for name, entries in self.scores.items()
        }


def rescored(
    index: VectorIndex, name: str, entries: Mapping[int, tuple[float, int | None]], query: QuerySpec
) -> Scores:
    """``entries`` with the exact cosine of each asset's vector (its item's for text retrievers) in ``index``."""
    keys: dict[int, int] = {}
    for asset, (_, item) in entries.items():
        if name == IMAGE or item is not None:  # (a text retriever's entry always has its item)
            keys[asset] = asset if name == IMAGE or item is None else item
    vectors = index.vectors(keys.values())
    present = [asset for asset, key in keys.items() if key in vectors]
    scores = np.stack([vectors[keys[a]] for a in present]) @ query.vector if present else []
    return {a: (float(score), entries[a][1]) for a, score in zip(present, scores, strict=True)}


def best_items(found: list[tuple[int, float]], texts: Mapping[int, StoredText]) -> Scores:
    best: Scores = {}
    for item_id, score in found:  # best first
        text = texts.get(item_id)
        if text is not None and text.file_id not in best:
            best[text.file_id] = (score, item_id)
    return best


def best_matches(matches: list[KeywordMatch]) -> dict[int, tuple[float, int | None]]:
    best: dict[int, tuple[float, int | None]] = {}
    for match in matches:  # best first
        if match.file_id not in best:
            best[match.file_id] = (match.score, match.item_id)
    return best


def best_text_item(evidence: Evidence, asset: int) -> int | None:
    """The text item to show for an asset: its best-scoring caption or segment, else its keyword match."""
    best: tuple[float, int] | None = None
    for name in (CAPTION, TRANSCRIPT):
        score, item = evidence.scores.get(name, {}).get(asset, (0.0, None))
        if item is not None and (best is None or score > best[0]):
            best = (score, item)
    if best is not None:
        return best[1]
    return evidence.scores.get(KEYWORD, {}).get(asset, (0.0, None))[1]


def main_evidence(asset: int, evidence: Evidence, reason: Any, results: Mapping[str, Ranked]) -> str:
    """The retriever that gave the asset most of its score (by contribution, else by raw score)."""
    if reason is not None:
        return max(reason.contributions.items(), key=lambda entry: entry[1].contribution)[0]
    present = [name for name in results if asset in evidence.scores.get(name, {})]
    return present[0] if present else IMAGE


def evidence_dict(asset: int, evidence: Evidence, reasons: Mapping[int, Any]) -> dict[str, Any] | None:
    if asset not in reasons:
        return None
    details = reasons[asset].to_dict()
    for name, entry in details["contributions"].items():
        entry["item_id"] = evidence.scores.get(name, {}).get(asset, (None, None))[1]
    return details


def make_hit(
    rank: int, score: float, file: StoredFile, match: str, text: StoredText | None, details: dict[str, Any] | None
) -> Hit:
    hit = Hit(rank, float(score), file.id, file.path, file.kind, file.width, file.height, match)
    if text is not None:
        hit = replace(hit, text=text.text, start=text.start, end=text.end, item_id=text.id)
    return replace(hit, evidence=details) if details is not None else hit
