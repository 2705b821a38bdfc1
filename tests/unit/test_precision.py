"""The CPU precision rule (torch-free): bf16 only where supported and agreeing, fp32 when asked, reasons kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmsearch.config import resolve_settings
from mmsearch.encoders import precision
from mmsearch.encoders.precision import (
    Agreement,
    PrecisionChoice,
    agreement,
    choose_cpu_precision,
    cpu_bf16_support,
    probe_images,
)
from mmsearch.errors import ConfigError

SUPPORTED = (True, "CPU has avx512_bf16")
UNSUPPORTED = (False, "CPU has no native bf16")


class Check:
    """A stand-in agreement check that counts its calls."""

    def __init__(self, worst: float = 0.9995, mean: float = 0.9999, error: Exception | None = None) -> None:
        self.result = Agreement(worst, mean, 8)
        self.error = error
        self.calls = 0

    def __call__(self) -> Agreement:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.result


def test_auto_picks_bf16_only_when_supported_and_agreeing() -> None:
    check = Check()
    choice = choose_cpu_precision("auto", SUPPORTED, check)
    assert choice.dtype == "bf16" and check.calls == 1
    assert choice.agreement == check.result
    assert "worst cosine 0.99950" in choice.reason and "passes" in choice.reason


def test_auto_without_cpu_support_stays_fp32_without_running_the_check() -> None:
    check = Check()
    choice = choose_cpu_precision("auto", UNSUPPORTED, check)
    assert choice == PrecisionChoice("fp32", "auto: CPU has no native bf16")
    assert check.calls == 0


@pytest.mark.parametrize(("worst", "mean"), [(0.98, 0.9995), (0.995, 0.997), (float("nan"), 0.9999)])
def test_auto_falls_back_to_fp32_when_the_agreement_check_fails(worst: float, mean: float) -> None:
    choice = choose_cpu_precision("auto", SUPPORTED, Check(worst, mean))
    assert choice.dtype == "fp32"
    assert "fails" in choice.reason and choice.agreement is not None
    assert choice.to_dict()["dtype"] == "fp32" and "worst_cosine" in choice.to_dict()


def test_a_tower_that_cannot_run_in_bf16_stays_fp32() -> None:
    choice = choose_cpu_precision("auto", SUPPORTED, Check(error=RuntimeError("no bf16 kernel")))
    assert choice.dtype == "fp32" and "RuntimeError: no bf16 kernel" in choice.reason


def test_fp32_setting_forces_fp32_and_bf16_forces_bf16() -> None:
    check = Check()
    assert choose_cpu_precision("fp32", SUPPORTED, check).dtype == "fp32"
    assert choose_cpu_precision("bf16", UNSUPPORTED, check).dtype == "bf16"
    assert check.calls == 0
    with pytest.raises(ValueError, match="precision must be one of"):
        choose_cpu_precision("fp16", SUPPORTED, check)


def test_thresholds_are_inclusive() -> None:
    edge = Agreement(precision.MIN_WORST_COSINE, precision.MIN_MEAN_COSINE, 8)
    assert edge.passed
    assert not Agreement(precision.MIN_WORST_COSINE - 1e-6, 1.0, 8).passed


def test_agreement_counts_nan_and_zero_rows_as_disagreeing() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((4, 16)).astype(np.float32)
    same = agreement(vectors, 3.0 * vectors)  # scale does not matter
    assert same.worst_cosine == pytest.approx(1.0) and same.probes == 4
    broken = vectors.copy()
    broken[1] = np.nan
    broken[2] = 0.0
    assert agreement(vectors, broken).worst_cosine == -1.0


@pytest.mark.parametrize(
    ("cpuinfo", "supported"),
    [
        ("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 amx_tile\n", True),
        ("flags\t\t: fpu avx512f amx_bf16 amx_tile\n", True),
        ("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n", True),
        ("flags\t\t: fpu sse avx2 avx512f avx512bw\n", False),  # AVX-512 alone only emulates bf16
    ],
)
def test_cpu_support_from_cpuinfo_flags(cpuinfo: str, supported: bool) -> None:
    assert cpu_bf16_support(cpuinfo)[0] is supported


def test_cpu_support_falls_back_to_torch_where_there_is_no_cpuinfo() -> None:
    def broken() -> bool:
        raise AttributeError("moved")

    assert cpu_bf16_support("", torch_check=lambda: True) == (True, "torch reports AVX512-BF16")
    assert cpu_bf16_support("", torch_check=lambda: False)[0] is False
    assert cpu_bf16_support("", torch_check=broken)[0] is False
    assert cpu_bf16_support("")[0] is False


def test_probe_images_are_deterministic() -> None:
    first, second = probe_images(), probe_images()
    assert len(first) == precision.PROBE_IMAGE_COUNT
    assert all(image.size == (320, 240) and image.mode == "RGB" for image in first)
    assert [image.tobytes() for image in first] == [image.tobytes() for image in second]
    assert len({image.tobytes() for image in first}) == len(first)


def test_precision_setting_from_environment_and_argument(tmp_path: Path) -> None:
    assert resolve_settings(tmp_path, environ={}).precision == "auto"
    assert resolve_settings(tmp_path, environ={"MMSEARCH_PRECISION": "fp32"}).precision == "fp32"
    assert resolve_settings(tmp_path, environ={"MMSEARCH_PRECISION": "fp32"}, precision="bf16").precision == "bf16"
    with pytest.raises(ConfigError, match="precision must be one of"):
        resolve_settings(tmp_path, environ={"MMSEARCH_PRECISION": "fp16"})
