"""Helpers shared by ``bench/ingest.py`` and ``bench/query.py``; not a benchmark itself.

Paths to the shared fixture data are resolved at run time (``../shared`` next to the
checkout, or ``$MMSEARCH_SHARED``); nothing from there is ever copied into the repository.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MMSEARCH_SHARED") or REPO.parent / "shared")
FIXTURE_MODEL = "hf-hub:mmsearch-fixtures/lit-effnet-minilm"
DEV_IMAGES = "../shared/data/flickr8k/dev/images"
DEV_CAPTIONS = "../shared/data/flickr8k/dev/captions.tsv"
QUIET_LIMIT = 0.05
_USER_SETTINGS = ("MMSEARCH_HOME", "MMSEARCH_MODEL", "MMSEARCH_DEVICE", "MMSEARCH_PRECISION", "MMSEARCH_DB_URL")


def use_offline_fixture() -> None:
    """Point Hugging Face at the offline fixture model (unless already set) and ignore user settings.

    Must run before torch, open_clip or huggingface_hub is imported. The MMSEARCH_* variables
    are dropped so a developer's own database or model can never be touched by a benchmark.
    """
    hf_home = SHARED / "models" / "hf"
    if hf_home.is_dir():
        os.environ.setdefault("HF_HOME", str(hf_home))
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    for var in _USER_SETTINGS:
        os.environ.pop(var, None)


def repo_path(value: str) -> Path:
    """A path argument: absolute as given, relative ones resolved against the repository root."""
    path = Path(value).expanduser()
    return (path if path.is_absolute() else REPO / path).resolve()


def sqlite_url(home: Path) -> str:
    """An explicit database URL inside ``home``, so no environment or config can redirect it."""
    return f"sqlite:///{home / 'mmsearch.db'}"


def log(message: str) -> None:
    """Progress goes to stderr, so ``--json`` output on stdout stays parseable."""
    print(message, file=sys.stderr, flush=True)


class CpuMonitor:
    """Measures how much of the machine's CPU *other* processes used during a block.

    From ``/proc/stat`` (all CPUs) minus this process's own CPU time; ``other_share`` is a
    fraction of the machine's total CPU capacity over the block, or None where unavailable.
    Jiffy resolution (about 10 ms), so use it only around blocks of a second or more.
    """

    def __init__(self) -> None:
        self.wall_s = 0.0
        self.own_cpu_s = 0.0
        self.other_share: float | None = None

    def __enter__(self) -> CpuMonitor:
        self._stat = _proc_stat()
        self._own = _own_cpu_s()
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.wall_s = time.perf_counter() - self._wall
        self.own_cpu_s = _own_cpu_s() - self._own
        stat = _proc_stat()
        if self._stat is None or stat is None:
            return
        busy, total = stat[0] - self._stat[0], stat[1] - self._stat[1]
        if total > 0:
            self.other_share = max(0.0, busy - self.own_cpu_s) / total

    def to_dict(self) -> dict[str, Any]:
        share = None if self.other_share is None else round(self.other_share, 4)
        return {"wall_s": round(self.wall_s, 3), "own_cpu_s": round(self.own_cpu_s, 3), "other_cpu_share": share}


def _proc_stat() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = [int(value) for value in handle.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / tick, sum(fields) / tick


def _own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def quiet_row(label: str, shares: Sequence[float | None], limit: float = QUIET_LIMIT) -> Row:
    """A row flagging runs during which other processes used more than ``limit`` of the CPU."""
    known = [share for share in shares if share is not None]
    if not known:
        return Row(f"other processes' CPU during {label}", "n/a")
    worst = max(known)
    return Row(
        f"other processes' CPU during {label} (worst)", f"{worst:.1%}", "", f"< {limit:.0%} (quiet)", worst < limit
    )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_facts(device: str) -> dict[str, Any]:
    """What the numbers were measured on. Imports torch (call it after the timed model load)."""
    import torch

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    facts: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "nproc": usable,
        "cpu_count": os.cpu_count(),
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "device": device,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "open_clip": _version("open_clip_torch"),
        "faiss": _version("faiss-cpu"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if device == "cuda" and torch.cuda.is_available():
        facts["gpu"] = torch.cuda.get_device_name()
    return facts


@dataclass(frozen=True)
class Row:
    """One line of the result table. ``passed`` is None for informational lines."""

    metric: str
    value: float | int | str
    unit: str = ""
    target: str = ""
    passed: bool | None = None


def _format_value(row: Row) -> str:
    value = f"{row.value:.3f}" if isinstance(row.value, float) else str(row.value)
    return f"{value} {row.unit}".strip()


def format_table(rows: Sequence[Row]) -> str:
    """A plain-text table: metric, value, target, pass/fail."""
    header = ("metric", "value", "target", "result")
    cells = [header] + [
        (
            row.metric,
            _format_value(row),
            row.target or "-",
            "-" if row.passed is None else ("PASS" if row.passed else "FAIL"),
        )
        for row in rows
    ]
    widths = [max(len(line[col]) for line in cells) for col in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def emit(rows: Sequence[Row], payload: dict[str, Any], as_json: bool) -> None:
    """Print the table (with the machine facts) or, with ``--json``, one JSON object."""
    if as_json:
        payload = {**payload, "table": [asdict(row) for row in rows]}
        print(json.dumps(payload, indent=2, sort_keys=False, default=str))
        return
    print(format_table(rows))
    print()
    for key, value in payload.get("machine", {}).items():
        print(f"{key}: {value}")
    for note in payload.get("notes", []):
        print(f"note: {note}")


def all_passed(rows: Sequence[Row]) -> bool:
    """True when no row with a target failed."""
    return all(row.passed is not False for row in rows)
