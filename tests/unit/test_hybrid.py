"""Hybrid search with the fake encoder: keyword retrieval, modes, filters before the top-k cut, exact
re-ranking, explanations, cut-offs, diversity and ``Engine.evaluate``."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmsearch import Engine
from mmsearch.search.filters import Filters
from mmsearch.search.hybrid import MIN_WINDOW, HybridSearcher
from mmsearch.search.options import SearchError, SearchOptions
from mmsearch.search.query import Query, QuerySpec
from mmsearch.store.keyword import keyword_search, query_tokens
from tests.conftest import make_image

CAPTIONS = {
    "dog": "a brown dog running on the beach",
    "cat": "a grey cat asleep on a sofa",
    "boat": "a red boat in the harbour at sunset",
    "snow": "children playing in the snow",
}


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """Four captioned photos, two without captions (one named after what it shows), in two folders."""
    folder = tmp_path / "library"
    for seed, (stem, caption) in enumerate(CAPTIONS.items(), 1):
        make_image(folder / "captioned" / f"{stem}.jpg", seed)
        (folder / "captioned" / f"{stem}.txt").write_text(caption + "\n", encoding="utf-8")
    make_image(folder / "plain" / "lighthouse_at_night.png", 11)
    make_image(folder / "plain" / "untitled.jpg", 12)
    return folder


@pytest.fixture
def engine(tmp_path: Path, library: Path):
    with Engine.open(tmp_path / "home", model="fake:32", db_url="sqlite://", workers=1) as engine:
        engine.ingest(library)
        yield engine


def names(hits) -> list[str]:
    return [Path(hit.path).name for hit in hits]


def test_query_tokens_are_lowercased_unique_words() -> None:
    assert query_tokens('Dog, dog "BEACH"!') == ["dog", "beach"]
    assert query_tokens("  ¿?  ") == []


def test_keyword_search_on_sqlite_finds_captions_and_file_names(engine: Engine) -> None:
    matches = keyword_search(engine.store.reads, "sunset lighthouse", 10)
    found = {(m.kind, Path(engine.store.get_files([m.file_id])[m.file_id].path).name) for m in matches}
    assert found == {("caption", "boat.jpg"), ("name", "lighthouse_at_night.png")}
    assert all(m.score > 0 for m in matches)


def test_keyword_search_stems_words(engine: Engine) -> None:
    """FTS5's porter tokenizer: 'runs' matches 'running', 'children' only itself."""
    hits = engine.search("runs", mode="keyword", k=5)
    assert names(hits) == ["dog.jpg"] and hits[0].match == "keyword" and hits[0].text == CAPTIONS["dog"]


def test_keyword_mode_returns_only_keyword_matches(engine: Engine) -> None:
    hits = engine.search("grey sofa", mode="keyword", k=10)
    assert names(hits) == ["cat.jpg"]


def test_keyword_mode_without_words_is_a_clean_error(engine: Engine) -> None:
    with pytest.raises(SearchError, match="keyword mode needs query text") as raised:
        engine.search(image=engine.store.get_files([1])[1].path, mode="keyword")
    assert raised.value.exit_code == 2


def test_dense_mode_is_cosine_over_image_and_caption_vectors(engine: Engine) -> None:
    hits = engine.search(CAPTIONS["boat"], mode="dense", k=6)
    assert names(hits)[0] == "boat.jpg" and hits[0].match == "caption"
    assert len(hits) == 6 and len(set(names(hits))) == 6


def test_hybrid_lifts_an_uncaptioned_photo_by_its_file_name(engine: Engine) -> None:
    """The fake encoder's pixels and captions know nothing of lighthouses; the file name does."""
    dense = names(engine.search("lighthouse", mode="dense", k=6))
    hybrid = engine.search("lighthouse", k=6, explain=True)
    assert names(hybrid).index("lighthouse_at_night.png") < dense.index("lighthouse_at_night.png")
    keyword = {Path(h.path).name: h.evidence["contributions"]["keyword"]["contribution"] for h in hybrid}
    assert keyword.pop("lighthouse_at_night.png") > 0 and set(keyword.values()) == {0.0}
    # without the pixels' noise, with keywords weighing as much as captions: first
    text_only = engine.search("lighthouse", k=6, weights={"image": 0, "keyword": 1})
    assert names(text_only)[0] == "lighthouse_at_night.png"


def test_zero_weight_drops_a_retriever(engine: Engine) -> None:
    without_keywords = engine.search("lighthouse", k=6, weights={"keyword": 0})
    dense = engine.search("lighthouse", k=6, mode="dense")
    assert [(h.path, h.score) for h in without_keywords] == [(h.path, h.score) for h in dense]


def test_explain_contributions_add_up_to_the_score(engine: Engine) -> None:
    hits = engine.search("a red boat at sunset", k=3, explain=True)
    assert names(hits)[0] == "boat.jpg"
    for hit in hits:
        parts = hit.evidence["contributions"]
        assert set(parts) == {"image", "caption", "keyword"}
        assert sum(part["contribution"] for part in parts.values()) == pytest.approx(hit.score, abs=1e-9)
    assert hits[0].evidence["contributions"]["keyword"]["raw_score"] > 0


@pytest.mark.parametrize("fusion", ["rrf", "minmax", "zscore"])
def test_every_fusion_method_ranks_the_described_photo_first(engine: Engine, fusion: str) -> None:
    assert names(engine.search("a grey cat asleep on a sofa", k=3, fusion=fusion))[0] == "cat.jpg"


def test_path_glob_extension_and_min_score_filters(engine: Engine, library: Path) -> None:
    under = engine.search("dog", k=10, filters=Filters(path=str(library / "plain")))
    assert set(names(under)) == {"lighthouse_at_night.png", "untitled.jpg"}
    globbed = engine.search("dog", k=10, filters=Filters(path="*/captioned/[bc]*"))
    assert set(names(globbed)) == {"boat.jpg", "cat.jpg"}
    pngs = engine.search("dog", k=10, filters=Filters(ext=("png",)))
    assert names(pngs) == ["lighthouse_at_night.png"]
    high = engine.search(CAPTIONS["dog"], k=10, mode="dense", min_score=0.99, weights={"image": 0})
    assert names(high) == ["dog.jpg"]


def test_time_filters_use_the_file_time(engine: Engine, library: Path) -> None:
    old = library / "captioned" / "snow.jpg"
    os.utime(old, (1_000_000_000, 1_000_000_000))  # 2001
    engine.ingest(library)
    assert names(engine.search("snow", k=10, filters=Filters(until=1_100_000_000))) == ["snow.jpg"]
    assert "snow.jpg" not in names(engine.search("snow", k=10, filters=Filters(since=1_100_000_000)))


def test_kind_any_ranks_each_asset_once(engine: Engine) -> None:
    hits = engine.search("dog", kind="any", k=10)
    assert len(hits) == len(set(h.path for h in hits)) == 6


def test_caption_kind_in_keyword_mode_returns_the_matching_caption(engine: Engine) -> None:
    hits = engine.search("harbour", kind="caption", mode="keyword", k=5)
    assert [h.text for h in hits] == [CAPTIONS["boat"]]


def test_adaptive_cutoff_keeps_the_head(engine: Engine) -> None:
    hits = engine.search(CAPTIONS["cat"], k=6, mode="dense", cutoff="gap")
    assert 1 <= len(hits) < 6 and names(hits)[0] == "cat.jpg"


def test_diverse_collapses_identical_photos(tmp_path: Path) -> None:
    folder = tmp_path / "twins"
    for name in ("a.jpg", "a_copy.jpg"):
        make_image(folder / name, 1)
    make_image(folder / "b.jpg", 2)
    with Engine.open(tmp_path / "home", model="fake:32", db_url="sqlite://", workers=1) as engine:
        engine.ingest(folder)
        plain = engine.search(image=folder / "a.jpg", k=3)
        diverse = engine.search(image=folder / "a.jpg", k=3, diverse=True)
    assert set(names(plain[:2])) == {"a.jpg", "a_copy.jpg"}
    assert len(diverse) == 2 and names(diverse)[1] == "b.jpg"


def test_weighted_query_arithmetic(engine: Engine) -> None:
    """Captions only (the fake encoder's image-text similarities are noise)."""
    options = {"k": 6, "mode": "dense", "weights": {"image": 0}}
    plain = engine.search(CAPTIONS["dog"], **options)
    minus = engine.search(f'"{CAPTIONS["dog"]}" - "{CAPTIONS["dog"]}" + "{CAPTIONS["cat"]}"', **options)
    doubled = engine.search(f'2:"{CAPTIONS["cat"]}"', **options)
    assert names(plain)[0] == "dog.jpg" and names(minus)[0] == "cat.jpg"
    assert [(h.path, h.score) for h in doubled] == [
        (h.path, pytest.approx(h.score)) for h in engine.search(CAPTIONS["cat"], **options)
    ]


def test_image_and_text_mix(engine: Engine, library: Path) -> None:
    """One query vector from both: its image side finds the photo, its text side the caption."""
    dog = library / "captioned" / "dog.jpg"
    by_pixels = engine.search(CAPTIONS["cat"], image=dog, k=6, mode="dense", weights={"caption": 0})
    by_caption = engine.search(CAPTIONS["cat"], image=dog, k=6, mode="dense", weights={"image": 0})
    assert names(by_pixels)[0] == "dog.jpg" and names(by_caption)[0] == "cat.jpg"
    assert 0.5 < by_pixels[0].score < 0.9  # not the photo's own vector: the text moved the query


def test_unknown_options_are_refused(engine: Engine) -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        engine.search("dog", mode="sparse")
    with pytest.raises(ValueError, match="fusion must be one of"):
        engine.search("dog", fusion="borda")
    with pytest.raises(TypeError, match="unknown search option"):
        engine.search("dog", colour="red")


# -- filters apply before the top-k cut ---------------------------------------------------------


@pytest.fixture(scope="module")
def crowd(tmp_path_factory):
    """More photos than the first retrieval window, a few of them in a folder of their own."""
    folder = tmp_path_factory.mktemp("crowd")
    for seed in range(MIN_WINDOW + 40):
        make_image(folder / ("rare" if seed % 29 == 0 else "common") / f"p{seed:03d}.jpg", seed, size=(16, 12))
    home = tmp_path_factory.mktemp("crowd-home")
    with Engine.open(home, model="fake:16", db_url="sqlite://", workers=1) as engine:
        engine.ingest(folder)
        yield engine, folder


def brute_force(engine: Engine, query: np.ndarray, accept) -> list[str]:
    model_id, _ = engine.store.active_model()
    files = engine.store.get_files(range(1, 10_000))
    vectors = engine.store.image_vectors_of(model_id, files)
    scored = [(-float(vectors[i] @ query), files[i].path) for i in files if accept(files[i])]
    return [path for _, path in sorted(scored)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    probe=st.integers(0, MIN_WINDOW + 39),
    k=st.integers(1, 12),
    folder=st.sampled_from([None, "rare", "common"]),
    pattern=st.sampled_from([None, "*/p0[0-4]*", "*7.jpg"]),
)
def test_filtered_dense_results_are_the_exact_top_k_of_what_passes(crowd, probe, k, folder, pattern) -> None:
    """Property: whatever the filter, ``k`` results come back when ``k`` pass, in exact cosine order."""
    engine, root = crowd
    query_path = next(root.rglob(f"p{probe:03d}.jpg"))
    path_filter = str(root / folder) if folder else pattern
    filters = Filters(path=path_filter)
    hits = engine.search(image=query_path, k=k, filters=filters)
    query = engine.queries.encode(Query.parse(None, query_path), *engine.store.active_model()).vector
    expected = brute_force(engine, query, filters.accepts)
    assert [h.path for h in hits] == expected[:k]


class ShuffledIndex:
    """An 'approximate' index: finds the true top ``window`` but reports them with wrong scores and order."""

    exact_scores = False

    def __init__(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.ids, self.matrix = ids, vectors

    def __len__(self) -> int:
        return len(self.ids)

    def vectors(self, ids) -> dict[int, np.ndarray]:
        rows = {int(key): row for row, key in enumerate(self.ids)}
        return {int(key): self.matrix[rows[int(key)]] for key in ids if int(key) in rows}

    def search(self, queries: np.ndarray, k: int):
        exact = self.matrix @ queries[0]
        top = np.argsort(-exact, kind="stable")[:k]
        rng = np.random.default_rng(0)
        noisy = rng.permutation(top)
        return rng.random((1, len(noisy))).astype(np.float32), self.ids[noisy][None, :]


def searcher_over(engine: Engine, index_class: type) -> tuple[HybridSearcher, np.ndarray, np.ndarray]:
    """A searcher whose every index is ``index_class`` over the engine's image vectors; with those ids and vectors."""
    model_id, _ = engine.store.active_model()
    ids, vectors = map(np.concatenate, zip(*engine.store.iter_file_vectors(model_id), strict=True))
    return HybridSearcher(engine.store, model_id, lambda collection: index_class(ids, vectors)), ids, vectors


def test_rescoring_restores_exact_order_and_drops_nothing_found(crowd) -> None:
    searcher, ids, vectors = searcher_over(crowd[0], ShuffledIndex)
    query = vectors[5]
    hits = searcher.search(QuerySpec(query, None, True), 20, "image", SearchOptions(mode="dense"))
    exact = [int(i) for i in ids[np.argsort(-(vectors @ query), kind="stable")][:20]]
    assert [h.id for h in hits] == exact
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_the_keyword_retrieval_runs_once_per_search(engine: Engine, monkeypatch) -> None:
    """The engine runs it before encoding the query (prefetch); the search then reuses it."""
    import mmsearch.search.hybrid as hybrid

    calls = []
    original = hybrid.keyword_search
    monkeypatch.setattr(hybrid, "keyword_search", lambda *args: calls.append(args) or original(*args))
    hits = engine.search(CAPTIONS["dog"], k=3, kind="any")
    assert len(calls) == 1 and hits
    engine.search(CAPTIONS["dog"], k=3, kind="caption")
    assert len(calls) == 2


class ExactIndex(ShuffledIndex):
    """Exact scores in exact order, like flat and HNSWFlat: the searcher must not read vectors back."""

    exact_scores = True

    def vectors(self, ids) -> dict[int, np.ndarray]:
        raise AssertionError("an index with exact scores was asked for its vectors")

    def search(self, queries: np.ndarray, k: int):
        exact = self.matrix @ queries[0]
        top = np.argsort(-exact, kind="stable")[:k]
        return exact[top][None, :].astype(np.float32), self.ids[top][None, :]


def test_exact_scores_are_not_rescored(crowd) -> None:
    searcher, ids, vectors = searcher_over(crowd[0], ExactIndex)
    query = vectors[7]
    hits = searcher.search(QuerySpec(query, None, True), 10, "image", SearchOptions(mode="dense"))
    order = np.argsort(-(vectors @ query), kind="stable")[:10]
    assert [h.id for h in hits] == [int(i) for i in ids[order]]
    assert [h.score for h in hits] == pytest.approx([float(s) for s in (vectors @ query)[order]])


# -- evaluation -----------------------------------------------------------------------------------


def test_evaluate_reports_every_mode(engine: Engine, tmp_path: Path) -> None:
    queries = tmp_path / "queries.tsv"
    queries.write_text(
        f"query\trelevant\n{CAPTIONS['dog']}\tdog.jpg\ngrey sofa\tcaptioned/cat.jpg\nlighthouse\tlighthouse_at_night\n",
        encoding="utf-8",
    )
    report = engine.evaluate(queries, weights={"image": 0, "keyword": 1})  # the fake pixels are noise to text
    by_mode = {mode.mode: mode for mode in report.modes}
    assert set(by_mode) == {"dense", "keyword", "hybrid"}
    assert by_mode["hybrid"].metrics["recall@1"] == 1.0 and by_mode["hybrid"].metrics["mrr"] == 1.0
    assert by_mode["keyword"].metrics["recall@10"] == 1.0
    assert by_mode["dense"].metrics["recall@1"] < 1.0  # the lighthouse has no caption: dense cannot know
    assert all(mode.queries == 3 and mode.latency_ms["p50"] >= 0 for mode in report.modes)


def save_with_exif_date(path: Path, seed: int, taken: str, offset: str | None = None) -> Path:
    from PIL import Image

    make_image(path, seed)
    exif = Image.Exif()
    details = exif.get_ifd(0x8769)
    details[0x9003] = taken
    if offset:
        details[0x9011] = offset
    with Image.open(path) as image:
        image.load()
        image.save(path, exif=exif)
    return path


def test_time_filters_prefer_the_exif_capture_date(tmp_path: Path) -> None:
    folder = tmp_path / "dated"
    save_with_exif_date(folder / "old.jpg", 1, "2001:09:09 01:46:40", "+00:00")  # 1,000,000,000
    save_with_exif_date(folder / "local.jpg", 2, "2010:01:01 12:00:00")
    make_image(folder / "undated.jpg", 3)
    with Engine.open(tmp_path / "home", model="fake:16", db_url="sqlite://", workers=1) as engine:
        engine.ingest(folder)
        files = {Path(f.path).name: f for f in engine.store.get_files(range(1, 10)).values()}
        assert files["old.jpg"].taken_at == 1_000_000_000
        assert files["local.jpg"].taken_at == dt.datetime(2010, 1, 1, 12).timestamp()  # no offset: local time
        undated = files["undated.jpg"]
        assert undated.taken_at is None and undated.time == undated.mtime_ns / 1e9
        before_2005 = engine.search("x", k=10, filters=Filters(until=dt.datetime(2005, 1, 1).timestamp()))
        since_2005 = engine.search("x", k=10, filters=Filters(since=dt.datetime(2005, 1, 1).timestamp()))
        assert names(before_2005) == ["old.jpg"]
        assert set(names(since_2005)) == {"local.jpg", "undated.jpg"}
        (folder / "old.txt").write_text("a sidecar changes nothing about the date")
        engine.ingest(folder)  # texts-only re-sync keeps the capture time
        assert engine.store.get_files([files["old.jpg"].id])[files["old.jpg"].id].taken_at == 1_000_000_000


def test_broken_exif_dates_are_ignored(tmp_path: Path) -> None:
    from PIL import Image

    from mmsearch.ingest.taken import taken_at

    path = save_with_exif_date(tmp_path / "zero.jpg", 1, "0000:00:00 00:00:00")
    with Image.open(path) as image:
        assert taken_at(image) is None
    with Image.open(make_image(tmp_path / "plain.png", 2)) as image:
        assert taken_at(image) is None
