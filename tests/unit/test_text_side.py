"""The text tower's ONNX-then-torch switch (ski rental): the plan from a calibrated choice, when it switches, what
it reports, and the torch load time the calibration records for it."""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmsearch.encoders import engine_choice, selection
from mmsearch.encoders.engine_choice import Candidate, TowerChoice, cached_choice, store_choice
from mmsearch.encoders.text_side import DEFAULT_LOAD_S, RentPlan, RentThenBuy

ONNX = Candidate("onnx", "fp32", 272.0, 1.0, 1.0)
TORCH_FP32 = Candidate("torch", "fp32", 230.0, 1.0, 1.0)
TORCH_BF16 = Candidate("torch", "bf16", 425.0, 0.9999, 0.99995)
MEASURED = (ONNX, TORCH_FP32, TORCH_BF16)


def torch_text(load_s: float | None = 4.5, measured: tuple[Candidate, ...] = MEASURED) -> TowerChoice:
    return TowerChoice("torch", "bf16", "text: fastest agreeing", measured, load_s=load_s)


class Side:
    """A text side that records the batches it encoded; vectors tell the sides apart."""

    def __init__(self, name: str, value: float) -> None:
        self.name, self.value = name, value
        self.batches: list[int] = []
        self.context_length = 32 if name == "onnx" else 77

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + (0 if self.name == "onnx" else 100)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.batches.append(len(texts))
        return np.full((len(texts), 4), self.value, dtype=np.float32)


class Maker:
    """A factory that counts its calls and hands out one side."""

    def __init__(self, side: Side | None) -> None:
        self.side, self.calls = side, 0

    def __call__(self) -> Side | None:
        self.calls += 1
        return self.side


def switch(load_s: float = 4.5) -> tuple[RentThenBuy, Maker, Maker]:
    plan = RentPlan.of(torch_text(load_s))
    assert plan is not None
    rent, buy = Maker(Side("onnx", 1.0)), Maker(Side("torch", 2.0))
    return RentThenBuy(plan, rent, buy), rent, buy  # type: ignore[arg-type]


def test_the_break_even_is_the_load_over_the_time_saved_per_text() -> None:
    plan = RentPlan.of(torch_text(4.5))
    assert plan is not None and plan.rented == ONNX and plan.bought_rate == 425.0
    assert plan.break_even == math.ceil(4.5 / (1 / 272.0 - 1 / 425.0)) == 3400
    assert RentPlan.of(torch_text(None)).load_s == DEFAULT_LOAD_S  # type: ignore[union-attr]
    assert RentPlan.of(torch_text(0.0)).break_even == 0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "choice",
    [
        TowerChoice("onnx", "fp32", "onnx won", MEASURED),  # nothing to rent
        torch_text(measured=(TORCH_FP32, TORCH_BF16)),  # no ONNX candidate was measured
        torch_text(measured=(Candidate("onnx", "fp32", 300.0, 0.99, 0.998), TORCH_BF16)),  # ONNX disagrees
        torch_text(measured=(Candidate("onnx", "fp32", 0.0), TORCH_BF16)),  # ONNX was not timed
        torch_text(measured=(Candidate("onnx", "fp32", 500.0), TORCH_BF16)),  # ONNX is faster (a forced torch)
        TowerChoice("torch", "fp32", "no candidate agreed", (TORCH_FP32,)),
    ],
)
def test_no_plan_where_there_is_nothing_faster_to_buy_or_nothing_to_rent(choice: TowerChoice) -> None:
    assert RentPlan.of(choice) is None


def test_a_plan_refuses_impossible_numbers() -> None:
    with pytest.raises(ValueError, match="load_s"):
        RentPlan(torch_text(), ONNX, float("nan"))
    with pytest.raises(ValueError, match="slower"):
        RentPlan(torch_text(), Candidate("onnx", "fp32", 900.0), 1.0)


def test_texts_go_to_the_export_until_the_break_even_then_to_torch_for_good() -> None:
    text, rent, buy = switch(load_s=0.0075)  # break-even: 6 texts
    assert text.plan.break_even == 6 and rent.calls == buy.calls == 0  # nothing loaded before the first text
    assert text.choice.engine == "onnx" and "first 6 texts" in text.choice.reason
    outputs = [text.encode_texts(["a dog"] * size)[0, 0] for size in (4, 1, 3, 2, 5)]
    assert outputs == [1.0, 1.0, 1.0, 2.0, 2.0]  # 0, 4 and 5 done before: rented; 8 and 10 done: bought
    assert rent.side.batches == [4, 1, 3] and buy.side.batches == [2, 5]  # type: ignore[union-attr]
    assert rent.calls == 1 and buy.calls == 1
    assert text.encoded == 15
    assert text.choice.engine == "torch" and text.choice.precision == "bf16"
    assert text.choice.reason.endswith("torch loaded after 8 texts on the ONNX export")


def test_tokens_and_context_come_from_the_side_in_use() -> None:
    text, rent, buy = switch(load_s=0.0)
    assert text.context_length == 32 and text.count_tokens("a b c") == 3 and buy.calls == 0
    text.encode_texts(["x"])  # break-even 0: the first call already buys
    assert text.context_length == 77 and text.count_tokens("a b c") == 103
    assert rent.side.batches == [] and buy.side.batches == [1]  # type: ignore[union-attr]


def test_an_export_that_cannot_load_means_torch_from_the_first_text() -> None:
    plan = RentPlan.of(torch_text())
    assert plan is not None
    rent, buy = Maker(None), Maker(Side("torch", 2.0))
    text = RentThenBuy(plan, rent, buy)  # type: ignore[arg-type]
    assert text.encode_texts(["a", "b"])[0, 0] == 2.0
    assert rent.calls == 1 and buy.calls == 1
    assert text.choice.engine == "torch" and "after 0 texts" in text.choice.reason


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 40), min_size=1, max_size=30), load_s=st.floats(0.0, 0.2))
def test_each_call_goes_to_the_side_the_count_before_it_says(sizes: list[int], load_s: float) -> None:
    text, rent, buy = switch(load_s)
    before = 0
    for size in sizes:
        expected = 1.0 if before < text.plan.break_even else 2.0
        assert text.encode_texts(["t"] * size)[0, 0] == expected
        before += size
    assert text.encoded == sum(sizes) and buy.calls <= 1 and rent.calls <= 1
    rented = sum(rent.side.batches)  # type: ignore[union-attr]
    assert rented < text.plan.break_even + max(sizes)  # at most one batch past the break-even stays on the export


def test_concurrent_callers_switch_once_and_lose_no_text() -> None:
    text, rent, buy = switch(load_s=0.05)
    start = threading.Barrier(8)

    def run() -> None:
        start.wait()
        for _ in range(40):
            text.encode_texts(["t"] * 3)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert rent.calls == 1 and buy.calls == 1 and text.encoded == 8 * 40 * 3
    assert sum(rent.side.batches) + sum(buy.side.batches) == text.encoded  # type: ignore[union-attr]


def test_the_load_time_is_cached_with_the_choice_and_bad_values_mean_calibrating_again(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MMSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    image = TowerChoice("onnx", "fp32", "image", (ONNX,), batch=2)
    store_choice("fp", "auto", "auto", {"image": image, "text": torch_text(3.25)})
    cached = cached_choice("fp", "auto", "auto")
    assert cached is not None and cached["text"].load_s == 3.25 and cached["image"].load_s is None
    path = Path(tmp_path / "cache" / engine_choice.CHOICES_FILE)
    for bad in (-1, 10**6, "slow", [1], float("nan")):
        data = json.loads(path.read_text())
        data[engine_choice.cpu_key()]["fp/auto/auto"]["text"]["load_s"] = bad
        path.write_text(json.dumps(data))
        assert cached_choice("fp", "auto", "auto") is None, bad


def test_the_calibration_times_the_torch_import_only_where_it_happens(monkeypatch) -> None:
    imported: list[str] = []

    def slow_import(name: str) -> object:
        imported.append(name)
        time.sleep(0.02)
        return object()

    monkeypatch.setattr(selection.importlib, "import_module", slow_import)
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.delitem(sys.modules, "open_clip", raising=False)
    seconds = selection._torch_import_s()
    assert imported == ["torch", "open_clip"] and seconds is not None and seconds >= 0.04
    monkeypatch.setitem(sys.modules, "torch", object())  # imported before: its cost is not what a new process pays
    assert selection._torch_import_s() is None

    def missing(name: str) -> object:
        raise ImportError(name)

    monkeypatch.delitem(sys.modules, "torch")
    monkeypatch.setattr(selection.importlib, "import_module", missing)
    assert selection._torch_import_s() is None
