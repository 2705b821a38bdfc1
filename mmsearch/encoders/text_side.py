"""The text tower when the calibration picked torch for it but ONNX runs the image tower: the ONNX export first.

Torch encodes texts faster on some CPUs (bf16: the fixture's text tower 425 against 272 texts/s on ONNX Runtime
fp32 on the 2-vCPU EPYC), but a process that would not otherwise load torch pays ~4.5 s to import it and build
the model before its first text. An ingest with a few hundred captions is then slower on torch than on the ONNX
export, which is already verified and loads in a fraction of a second; one with tens of thousands is faster. Which
it is cannot be known up front (captions come from sidecars, headers and manifests as the files are read).

So :class:`RentThenBuy` does what the ski-rental problem teaches: texts go to the ONNX export ("rent") until the
time torch would have saved on them reaches the cost of loading torch (:attr:`RentPlan.break_even` texts), then
it loads torch ("buy") and keeps it. Whatever the number of texts, the process spends at most about twice the
time the better choice made in hindsight would have. Both engines' vectors agree with open_clip fp32 within the
calibration's bar (worst cosine >= 0.995, mean >= 0.999), as queries encoded by the export already do.
Torch-free: this module imports neither torch nor onnxruntime.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from mmsearch.encoders.engine_choice import Candidate, TowerChoice

DEFAULT_LOAD_S = 4.5
"""Seconds a new process takes to import torch and open_clip, where the calibration did not measure it (they were
imported already): on the project's 2-vCPU VM the import alone measured 4.0 s, with the model build 4.6-4.9 s."""


class TextSide(Protocol):
    """What an encoder's text half is used for."""

    @property
    def context_length(self) -> int: ...

    def count_tokens(self, text: str) -> int: ...

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class RentPlan:
    """The calibrated torch text choice, the ONNX candidate it beat, and what loading torch costs."""

    bought: TowerChoice
    rented: Candidate
    load_s: float

    def __post_init__(self) -> None:
        if not (self.rented.rate > 0 and self.bought_rate > self.rented.rate):
            raise ValueError("renting needs a timed ONNX candidate slower than the choice")
        if not (math.isfinite(self.load_s) and self.load_s >= 0):
            raise ValueError(f"load_s must be a finite number of seconds >= 0, not {self.load_s!r}")

    @classmethod
    def of(cls, choice: TowerChoice) -> RentPlan | None:
        """The plan for a text ``choice`` on torch that beat a timed, agreeing ONNX fp32 candidate; else None
        (nothing to rent: the choice runs from the first text)."""
        if choice.engine != "torch":
            return None
        rented = next((c for c in choice.measured if c.engine == "onnx" and c.agrees and c.rate > 0), None)
        if rented is None or _rate_of(choice) <= rented.rate:
            return None
        return cls(choice, rented, choice.load_s if choice.load_s is not None else DEFAULT_LOAD_S)

    @property
    def bought_rate(self) -> float:
        return _rate_of(self.bought)

    @property
    def break_even(self) -> int:
        """Texts after which renting has cost what buying costs: ``load_s`` over the time saved per text."""
        saved_per_text = 1.0 / self.rented.rate - 1.0 / self.bought_rate
        return math.ceil(self.load_s / saved_per_text)

    def renting(self, encoded: int) -> TowerChoice:
        """What runs while renting, and why (the report's ``precision.text``)."""
        reason = (
            f"text: {self.bought.engine} {self.bought.precision} is faster ({self.bought_rate:.1f} against "
            f"{self.rented.rate:.1f} texts/s), but loading torch costs ~{self.load_s:.1f} s: the ONNX export "
            f"encodes this process's first {self.break_even} texts, then torch ({encoded} so far)"
        )
        return TowerChoice(self.rented.engine, self.rented.precision, reason, self.bought.measured)

    def bought_after(self, encoded: int) -> TowerChoice:
        reason = f"{self.bought.reason}; torch loaded after {encoded} texts on the ONNX export"
        return replace(self.bought, reason=reason)


class RentThenBuy:
    """The text half of an encoder: ``rent()`` until :attr:`RentPlan.break_even` texts were encoded, then
    ``buy()`` (each made on first need, once; ``rent()`` may give None, the export gone: then ``buy()`` at once).
    Thread-safe: the switch happens once, under a lock."""

    def __init__(self, plan: RentPlan, rent: Callable[[], TextSide | None], buy: Callable[[], TextSide]) -> None:
        self.plan = plan
        self._rent: Callable[[], TextSide | None] | None = rent
        self._buy = buy
        self._lock = threading.Lock()
        self._side: TextSide | None = None
        self._bought = False
        self.encoded = 0
        """Texts encoded so far (both sides)."""
        self._switched_at = 0

    @property
    def choice(self) -> TowerChoice:
        """What runs now, and why."""
        if self._bought:
            return self.plan.bought_after(self._switched_at)
        return self.plan.renting(self.encoded)

    @property
    def context_length(self) -> int:
        return self._current().context_length

    def count_tokens(self, text: str) -> int:
        return self._current().count_tokens(text)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            if not self._bought and self.encoded >= self.plan.break_even:
                self._side, self._rent = None, None  # the export is let go
                self._bought, self._switched_at = True, self.encoded
            side = self._current_locked()
            self.encoded += len(texts)
        return side.encode_texts(texts)

    def _current(self) -> TextSide:
        with self._lock:
            return self._current_locked()

    def _current_locked(self) -> TextSide:
        if self._side is None and not self._bought:
            rented = self._rent() if self._rent is not None else None
            if rented is None:  # the export could not be loaded after all: torch from here on
                self._bought, self._switched_at, self._rent = True, self.encoded, None
            self._side = rented
        if self._side is None:
            self._side = self._buy()
        return self._side


def _rate_of(choice: TowerChoice) -> float:
    """The measured rate of the candidate ``choice`` runs (0 when it was not timed)."""
    wanted = (choice.engine, choice.precision)
    return next((c.rate for c in choice.measured if (c.engine, c.precision) == wanted), 0.0)
