"""Which engine runs each model tower on this CPU: the candidates, the rule, and the per-machine cache.

Candidates (a tower's ``engine`` and ``precision``): ONNX Runtime fp32 (onnxruntime's CPU provider offers no bf16
arithmetic on x86: its bf16 fast-math switch is Arm-only), torch fp32 (channels_last for convolutional image
towers) and torch bf16 where the CPU has native bf16 (:func:`mmsearch.encoders.precision.cpu_bf16_support`).
A short calibration (:mod:`mmsearch.encoders.calibration`) measures each one's throughput on synthetic batches
and its agreement with the float32 open_clip reference on probe inputs; the fastest candidate that agrees
(worst cosine >= :data:`MIN_WORST_COSINE`, mean >= :data:`MIN_MEAN_COSINE`) runs the tower. Torch fp32 *is*
the reference, so a tower always has a candidate. The result is cached per model fingerprint, CPU and
installed runtime versions in ``engines.json`` of the shared cache, so later runs neither measure nor load torch
to decide. On CUDA the engine is torch (fp16/bf16 autocast), as before. Torch-free: this module imports neither.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from mmsearch.encoders.export_cache import cache_root, read_json, write_json
from mmsearch.errors import ConfigError

ENGINES = ("auto", "onnx", "torch")
TOWERS = ("image", "text")
MIN_WORST_COSINE = 0.995
MIN_MEAN_COSINE = 0.999
CHOICES_FILE = "engines.json"
CHOICE_FORMAT = 2
"""2: the image tower's choice holds its measured batch size (a cache of format 1 is calibrated again)."""
MAX_BATCH = 256
"""The largest batch a cached choice may name (the sweep measures up to 16): the ingest decodes a few batches
ahead, so an edited or damaged ``engines.json`` must not size that window."""
MAX_LOAD_S = 600.0
"""The longest torch load a cached choice may name (a damaged cache otherwise decides how long texts stay on ONNX)."""


@dataclass(frozen=True)
class Candidate:
    """One way to run a tower, as measured: throughput (items/s) and agreement with the fp32 reference."""

    engine: str
    precision: str
    rate: float = 0.0
    worst_cosine: float = 1.0
    mean_cosine: float = 1.0
    error: str | None = None

    @property
    def name(self) -> str:
        return f"{self.engine} {self.precision}"

    @property
    def agrees(self) -> bool:
        return self.error is None and self.worst_cosine >= MIN_WORST_COSINE and self.mean_cosine >= MIN_MEAN_COSINE

    def describe(self) -> str:
        if self.error is not None:
            return f"{self.name}: failed ({self.error})"
        verdict = "" if self.agrees else ", disagrees"
        rate = f"{self.rate:.1f}/s" if self.rate > 0 else "not timed"
        return f"{self.name} {rate} (worst {self.worst_cosine:.5f}, mean {self.mean_cosine:.5f}{verdict})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "precision": self.precision,
            "rate": round(self.rate, 2),
            "worst_cosine": round(self.worst_cosine, 6),
            "mean_cosine": round(self.mean_cosine, 6),
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        return cls(
            str(data["engine"]),
            str(data["precision"]),
            float(data.get("rate", 0.0)),
            float(data.get("worst_cosine", 1.0)),
            float(data.get("mean_cosine", 1.0)),
            data.get("error"),
        )


@dataclass(frozen=True)
class TowerChoice:
    """What runs one tower and why; ``measured`` holds every candidate when a calibration decided."""

    engine: str
    precision: str
    reason: str
    measured: tuple[Candidate, ...] = field(default=())
    batch: int | None = None
    """Images per call measured fastest for the winner (image tower; :mod:`mmsearch.encoders.batch_choice`)."""
    batch_rates: tuple[tuple[int, float], ...] = field(default=())
    """(size, images/s) of each size timed."""
    load_s: float | None = None
    """Seconds a new process took to import torch and open_clip (a torch choice, where the calibration imported
    them itself): what a text tower on torch costs before its first text (:mod:`mmsearch.encoders.text_side`)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "engine": self.engine,
            "dtype": self.precision,
            "reason": self.reason,
            "measured": [candidate.to_dict() for candidate in self.measured],
        }
        if self.batch is not None:
            out["batch"] = self.batch
            out["batch_rates"] = {str(size): round(rate, 2) for size, rate in self.batch_rates}
        if self.load_s is not None:
            out["load_s"] = round(self.load_s, 3)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TowerChoice:
        measured = tuple(Candidate.from_dict(item) for item in data.get("measured") or ())
        batch = int(data["batch"]) if data.get("batch") is not None else None
        if batch is not None and not 1 <= batch <= MAX_BATCH:  # a damaged cache: calibrate again, never trust it
            raise ValueError(f"batch must be 1 to {MAX_BATCH}, got {batch}")
        rates = tuple(sorted((int(size), float(rate)) for size, rate in (data.get("batch_rates") or {}).items()))
        load_s = float(data["load_s"]) if data.get("load_s") is not None else None
        if load_s is not None and not 0 <= load_s <= MAX_LOAD_S:  # NaN too
            raise ValueError(f"load_s must be 0 to {MAX_LOAD_S} seconds, got {load_s}")
        return cls(str(data["engine"]), str(data["dtype"]), str(data["reason"]), measured, batch, rates, load_s)


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    return engine


def candidates_for(engine: str, precision: str, bf16_native: bool, onnx_ready: bool) -> list[tuple[str, str]]:
    """The (engine, precision) pairs a calibration measures for a ``--engine``/``--precision`` setting.

    ``onnx`` + ``bf16`` is refused (onnxruntime has no bf16 CPU arithmetic here); ``torch`` + ``auto`` keeps the
    torch encoder's own rule (bf16 where native and its check passes) and needs no calibration.
    """
    check_engine(engine)
    if engine == "onnx" and precision == "bf16":
        raise ConfigError("--engine onnx runs in fp32 only (onnxruntime has no bf16 on this CPU); use --engine torch")
    out: list[tuple[str, str]] = []
    if engine in ("auto", "onnx") and precision in ("auto", "fp32") and onnx_ready:
        out.append(("onnx", "fp32"))
    if engine in ("auto", "torch"):
        if precision in ("auto", "fp32"):
            out.append(("torch", "fp32"))
        if precision == "bf16" or (precision == "auto" and bf16_native):
            out.append(("torch", "bf16"))
    return out


def pick(tower: str, measured: Sequence[Candidate]) -> TowerChoice:
    """The fastest candidate that agrees with the reference; torch fp32 (the reference itself) otherwise."""
    agreeing = [candidate for candidate in measured if candidate.agrees]
    summary = "; ".join(candidate.describe() for candidate in measured)
    if not agreeing:
        reason = f"{tower}: no candidate agreed ({summary}); the fp32 reference"
        return TowerChoice("torch", "fp32", reason, tuple(measured))
    best = max(agreeing, key=lambda candidate: candidate.rate)
    reason = f"{tower}: fastest agreeing of {summary}" if len(measured) > 1 else f"{tower}: {summary}"
    return TowerChoice(best.engine, best.precision, reason, tuple(measured))


def cpu_key() -> str:
    """This machine as far as engine speed goes: CPU model, flags, usable cores, runtime versions."""
    parts = [platform.machine(), _cpu_model(), str(_usable_cpus()), *_runtime_versions()]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def _runtime_versions() -> tuple[str, ...]:
    """The installed onnxruntime and torch versions (read once a process: an ingest asks three times)."""
    parts = []
    for name in ("onnxruntime", "torch"):
        try:
            parts.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{name}=none")
    return tuple(parts)


@functools.lru_cache(maxsize=1)
def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor()
    wanted = ("model name", "flags", "features")
    lines = [line.partition(":")[2].strip() for line in text.splitlines() if line.partition(":")[0].strip() in wanted]
    return "|".join(dict.fromkeys(lines))


def _usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _choices_path() -> Path:
    return cache_root() / CHOICES_FILE


def _entry_key(fingerprint: str, engine: str, precision: str) -> str:
    return f"{fingerprint}/{engine}/{precision}"


def cached_choice(fingerprint: str, engine: str, precision: str) -> dict[str, TowerChoice] | None:
    """The calibrated choice for this model, setting and machine, or None."""
    data = read_json(_choices_path()) or {}
    if data.get("format") != CHOICE_FORMAT:
        return None
    entry = (data.get(cpu_key()) or {}).get(_entry_key(fingerprint, engine, precision))
    try:
        return {tower: TowerChoice.from_dict(entry[tower]) for tower in TOWERS} if entry else None
    except (KeyError, TypeError, ValueError):
        return None


def store_choice(fingerprint: str, engine: str, precision: str, choice: dict[str, TowerChoice]) -> None:
    """Remember a calibration; an unwritable cache only means calibrating again next time."""
    path = _choices_path()
    data = read_json(path) or {}
    if data.get("format") != CHOICE_FORMAT:
        data = {"format": CHOICE_FORMAT}
    machine = dict(data.get(cpu_key()) or {})
    machine[_entry_key(fingerprint, engine, precision)] = {tower: choice[tower].to_dict() for tower in TOWERS}
    data[cpu_key()] = machine
    with contextlib.suppress(OSError):
        write_json(path, data)
