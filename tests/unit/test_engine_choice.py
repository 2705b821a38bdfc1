"""Engine choice per tower: the candidates a setting allows, the rule, the calibration loop and the cache."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np
import pytest

from mmsearch.encoders import batch_choice, calibration, engine_choice
from mmsearch.encoders.base import ModelIdentity, l2_normalise
from mmsearch.encoders.engine_choice import (
    Candidate,
    TowerChoice,
    cached_choice,
    candidates_for,
    pick,
    store_choice,
)
from mmsearch.encoders.export_cache import known_identity, remember_identity, spec_key
from mmsearch.errors import ConfigError


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("MMSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_candidates_follow_engine_and_precision() -> None:
    assert candidates_for("auto", "auto", True, True) == [("onnx", "fp32"), ("torch", "fp32"), ("torch", "bf16")]
    assert candidates_for("auto", "auto", False, True) == [("onnx", "fp32"), ("torch", "fp32")]
    assert candidates_for("auto", "auto", True, False) == [("torch", "fp32"), ("torch", "bf16")]
    assert candidates_for("auto", "fp32", True, True) == [("onnx", "fp32"), ("torch", "fp32")]
    assert candidates_for("auto", "bf16", False, True) == [("torch", "bf16")]  # forced, as before
    assert candidates_for("onnx", "auto", True, True) == [("onnx", "fp32")]
    assert candidates_for("torch", "fp32", True, True) == [("torch", "fp32")]
    with pytest.raises(ConfigError, match="fp32 only"):
        candidates_for("onnx", "bf16", True, True)
    with pytest.raises(ConfigError, match="engine must be one of"):
        candidates_for("tensorrt", "auto", True, True)


def test_the_fastest_agreeing_candidate_wins() -> None:
    measured = [
        Candidate("onnx", "fp32", 140.0, 0.99999, 0.99999),
        Candidate("torch", "fp32", 58.0),
        Candidate("torch", "bf16", 160.0, 0.9973, 0.99895),  # faster, but mean below 0.999
    ]
    choice = pick("image", measured)
    assert (choice.engine, choice.precision) == ("onnx", "fp32")
    assert "disagrees" in choice.reason and "onnx fp32 140.0/s" in choice.reason
    measured[2] = Candidate("torch", "bf16", 160.0, 0.9990, 0.9995)
    assert (pick("image", measured).engine, pick("image", measured).precision) == ("torch", "bf16")


def test_a_failed_or_disagreeing_field_falls_back_to_the_fp32_reference() -> None:
    choice = pick("text", [Candidate("onnx", "fp32", error="boom"), Candidate("torch", "bf16", 9.0, 0.5, 0.6)])
    assert (choice.engine, choice.precision) == ("torch", "fp32")
    assert "no candidate agreed" in choice.reason and "boom" in choice.reason


def test_the_choice_is_cached_per_model_setting_and_machine(cache_dir: Path, monkeypatch) -> None:
    choice = {
        "image": TowerChoice("onnx", "fp32", "fast", (Candidate("onnx", "fp32", 140.0),)),
        "text": TowerChoice("torch", "bf16", "faster"),
    }
    assert cached_choice("fp1", "auto", "auto") is None
    store_choice("fp1", "auto", "auto", choice)
    assert cached_choice("fp1", "auto", "auto") == choice
    assert (cache_dir / "engines.json").is_file()
    assert cached_choice("fp2", "auto", "auto") is None  # another model
    assert cached_choice("fp1", "auto", "fp32") is None  # another setting
    monkeypatch.setattr(engine_choice, "_usable_cpus", lambda: 64)  # another machine
    assert cached_choice("fp1", "auto", "auto") is None


def test_identities_are_remembered_by_model_name(tmp_path: Path) -> None:
    identity = ModelIdentity("hf-hub:org/model", None, 256, {"size": [224, 224]})
    assert known_identity("hf-hub:org/model") is None
    remember_identity("hf-hub:org/model", identity)
    assert known_identity("hf-hub:org/model") == identity
    checkpoint = tmp_path / "weights.pt"
    checkpoint.write_bytes(b"one")
    before = spec_key(f"ViT-B-32:{checkpoint}")
    checkpoint.write_bytes(b"other weights")
    assert spec_key(f"ViT-B-32:{checkpoint}") != before  # a changed checkpoint is another model


class FakeTower:
    """Stands in for an engine: vectors off the reference by ``noise``, ``delay`` seconds per call."""

    def __init__(self, noise: float, delay: float, dim: int = 8) -> None:
        self.noise, self.delay, self.dim = noise, delay, dim

    def _vectors(self, keys: list[int]) -> np.ndarray:
        rows = np.stack([np.random.default_rng(key).standard_normal(self.dim) for key in keys])
        rows += self.noise * np.random.default_rng(0).standard_normal(rows.shape)
        time.sleep(self.delay)
        return l2_normalise(rows)

    def prepare_image(self, image) -> int:
        return int(np.asarray(image).sum()) % 10_000

    def encode_prepared(self, prepared) -> np.ndarray:
        return self._vectors(list(prepared))

    def encode_images(self, images) -> np.ndarray:
        return self.encode_prepared([self.prepare_image(image) for image in images])

    def encode_texts(self, texts) -> np.ndarray:
        return self._vectors([len(text) * 31 + sum(map(ord, text)) for text in texts])

    @contextlib.contextmanager
    def parallel_batches(self, requested: int = 0):
        yield 1


class FakeTorch(FakeTower):
    """fp32 is exact and slow; bf16 is fast and close (image) or too far off (text)."""

    def __init__(self) -> None:
        super().__init__(0.0, 0.02)
        self.precisions = {"image": "fp32", "text": "fp32"}
        self.tower = "image"

    def set_precision(self, tower: str, dtype: str, reason: str) -> None:
        self.precisions[tower] = dtype
        self.tower = tower

    def _vectors(self, keys):
        bf16 = self.precisions[self.tower] == "bf16"
        self.noise, self.delay = (0.01, 0.002) if bf16 else (0.0, 0.02)
        return super()._vectors(keys)


def test_calibration_measures_each_candidate_and_leaves_torch_in_the_winner(monkeypatch) -> None:
    monkeypatch.setattr(calibration, "IMAGE_BATCH", 4)
    monkeypatch.setattr(calibration, "TEXT_BATCH", 4)
    torch = FakeTorch()
    onnx_image = FakeTower(0.0, 0.005)
    pairs = [("onnx", "fp32"), ("torch", "fp32"), ("torch", "bf16")]
    choice = calibration.calibrate(torch, onnx_image, None, pairs)
    image, text = choice["image"], choice["text"]
    assert [c.name for c in image.measured] == ["onnx fp32", "torch fp32", "torch bf16"]
    assert [c.name for c in text.measured] == ["torch fp32", "torch bf16"]  # no ONNX text tower offered
    assert all(c.rate > 0 for c in image.measured + text.measured)
    bf16 = image.measured[2]
    assert bf16.rate > image.measured[0].rate and bf16.worst_cosine < 0.9999
    assert image.measured[1].worst_cosine == pytest.approx(1.0)
    winner = max((c for c in image.measured if c.agrees), key=lambda c: c.rate)
    assert (image.engine, image.precision) == (winner.engine, winner.precision)
    for tower, chosen in choice.items():
        assert torch.precisions[tower] == (chosen.precision if chosen.engine == "torch" else "fp32")


class Counting(FakeTower):
    """A FakeTower that counts its image calls (the probe check is one call; a timing is several)."""

    def __init__(self, noise: float, delay: float) -> None:
        super().__init__(noise, delay)
        self.calls = 0

    def encode_prepared(self, prepared) -> np.ndarray:
        self.calls += 1
        return super().encode_prepared(prepared)


def test_a_candidate_that_disagrees_is_never_timed(monkeypatch) -> None:
    monkeypatch.setattr(calibration, "IMAGE_BATCH", 4)
    monkeypatch.setattr(calibration, "TEXT_BATCH", 4)
    far_off = Counting(5.0, 0.0)  # fast, but its vectors are nowhere near the reference
    choice = calibration.calibrate(FakeTorch(), far_off, None, [("onnx", "fp32"), ("torch", "fp32")])
    onnx = choice["image"].measured[0]
    assert far_off.calls == 1 and not onnx.agrees and onnx.rate == 0.0  # the probe check only
    assert "not timed" in onnx.describe()
    assert (choice["image"].engine, choice["image"].precision) == ("torch", "fp32")


def test_a_clear_winner_is_decided_in_one_pass_and_a_close_race_gets_another(monkeypatch) -> None:
    """Rates are given, not timed: ONNX at 100 images/s against torch fp32 at 10 (clear), then at 11 (close)."""
    timings: list[str] = []
    rates = {"onnx": 100.0, "torch": 10.0}

    def given_rate(encode, batch, parallel, floor=0.0) -> float:
        engine = "onnx" if isinstance(encode.__self__, Counting) else "torch"
        timings.append(engine)
        return rates[engine]

    monkeypatch.setattr(calibration, "_rate", given_rate)
    pairs = [("onnx", "fp32"), ("torch", "fp32")]
    choice = calibration.calibrate(FakeTorch(), Counting(0.0, 0.0), None, pairs)
    assert timings[:2] == ["onnx", "torch"] and timings[2:] == ["torch"]  # images: one pass; texts: torch only
    assert [c.rate for c in choice["image"].measured] == [100.0, 10.0]
    timings.clear()
    rates["onnx"] = 11.0  # within CLEAR_WIN of torch fp32: a second pass
    calibration.calibrate(FakeTorch(), Counting(0.0, 0.0), None, pairs)
    assert timings[:4] == ["onnx", "torch"] * calibration.MAX_PASSES


def test_a_timing_stops_after_the_round_that_puts_it_out_of_the_race(monkeypatch) -> None:
    calls: list[int] = []

    def encode(batch) -> None:
        calls.append(len(batch))
        time.sleep(0.01)

    monkeypatch.setattr(calibration, "ROUNDS", 3)
    single = lambda: contextlib.nullcontext(1)  # noqa: E731
    assert calibration._rate(encode, [0] * 4, single) > 0
    assert len(calls) == 1 + 3  # the warm-up, then every round
    calls.clear()
    rate = calibration._rate(encode, [0] * 4, single, floor=1e9)  # a leader no candidate can come near
    assert len(calls) == 1 + 1 and 0 < rate < 1e9  # one timed round, then out


class PerCallCost(FakeTower):
    """Each call costs a fixed time plus a per-item time that grows with the batch past ``sweet`` items (as a
    core's cache overflows): the fastest batch is ``sweet``."""

    def __init__(self, sweet: int) -> None:
        super().__init__(0.0, 0.0)
        self.sweet = sweet
        self.sizes: list[int] = []

    def encode_prepared(self, prepared) -> np.ndarray:
        self.sizes.append(len(prepared))
        per_item = 0.0004 if len(prepared) <= self.sweet else 0.0012
        time.sleep(0.002 + per_item * len(prepared))
        return self._vectors(list(prepared))


def test_the_batch_size_that_runs_fastest_is_measured_and_chosen() -> None:
    tower = PerCallCost(sweet=8)
    rates = batch_choice.measure_batches(tower.encode_prepared, [1, 2, 3], tower.parallel_batches, 0.0)
    assert sorted(rates) == list(batch_choice.BATCH_SIZES) and all(rate > 0 for rate in rates.values())
    assert batch_choice.best_batch(rates) == 8
    assert set(tower.sizes) == set(batch_choice.BATCH_SIZES)  # every size warmed up and timed at its own shape


def test_the_larger_size_wins_a_tie_and_slow_models_skip_the_large_sizes() -> None:
    assert batch_choice.best_batch({1: 100.0, 2: 99.0, 4: 80.0}) == 2  # within TIE: the larger
    assert batch_choice.best_batch({1: 120.0, 2: 99.0}) == 1
    assert batch_choice.best_batch({}) is None
    tower = PerCallCost(sweet=64)
    rates = batch_choice.measure_batches(tower.encode_prepared, [1], tower.parallel_batches, 3.0)  # 3 images/s
    assert sorted(rates) == [1, 2]  # a round of 4 images would take over MAX_ROUND_SECONDS at that rate
    assert batch_choice.best_batch({1: 50.0, 2: 80.0}) is None  # cut short while still rising: the default
    assert batch_choice.best_batch({1: 90.0, 2: 80.0}) == 1  # cut short, but it peaked before the cut


def test_the_calibration_keeps_the_measured_batch_in_the_cached_choice(monkeypatch) -> None:
    monkeypatch.setattr(calibration, "IMAGE_BATCH", 4)
    monkeypatch.setattr(calibration, "TEXT_BATCH", 4)
    choice = calibration.calibrate(FakeTorch(), PerCallCost(sweet=4), None, [("onnx", "fp32"), ("torch", "fp32")])
    image = choice["image"]
    assert image.engine == "onnx" and image.batch == batch_choice.best_batch(dict(image.batch_rates))
    assert image.batch in (2, 4) and choice["text"].batch is None  # a per-item time only past 4 (and ties)
    store_choice("fp", "auto", "auto", choice)
    cached = cached_choice("fp", "auto", "auto")
    assert cached is not None and cached["image"].batch == image.batch  # rates are rounded in the cache
    assert [size for size, _ in cached["image"].batch_rates] == [size for size, _ in image.batch_rates]


def test_a_cache_of_the_previous_format_is_calibrated_again(cache_dir: Path) -> None:
    import json

    cache_dir.mkdir(parents=True, exist_ok=True)
    entry = {tower: TowerChoice("onnx", "fp32", "old").to_dict() for tower in ("image", "text")}
    old = {"format": 1, engine_choice.cpu_key(): {"fp/auto/auto": entry}}
    (cache_dir / engine_choice.CHOICES_FILE).write_text(json.dumps(old))
    assert cached_choice("fp", "auto", "auto") is None  # no batch measured: calibrate again


@pytest.mark.parametrize("batch", [0, -3, 10**9, "many", [2]])
def test_a_damaged_batch_in_the_cache_means_calibrating_again(cache_dir: Path, batch) -> None:
    import json

    entry = {tower: TowerChoice("onnx", "fp32", "cached", batch=2).to_dict() for tower in ("image", "text")}
    store_choice("fp", "auto", "auto", {tower: TowerChoice.from_dict(item) for tower, item in entry.items()})
    assert cached_choice("fp", "auto", "auto")["image"].batch == 2
    data = json.loads((cache_dir / engine_choice.CHOICES_FILE).read_text())
    data[engine_choice.cpu_key()]["fp/auto/auto"]["image"]["batch"] = batch
    (cache_dir / engine_choice.CHOICES_FILE).write_text(json.dumps(data))
    assert cached_choice("fp", "auto", "auto") is None  # never a window sized by a bad number
