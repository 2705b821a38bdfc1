"""Settings: where data lives, which model and device to use, and the search defaults.

Precedence, highest first: explicit arguments (CLI flags) > environment variables > ``config.toml`` in the home >
the user's ``config.toml`` in the platform's config folder (:func:`user_config_file`: on Linux
``$XDG_CONFIG_HOME/mmsearch/config.toml``, by default ``~/.config/mmsearch/config.toml``) > built-in defaults.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from mmsearch.errors import ConfigError
from mmsearch.kinds import DEFAULT_MODE, IMAGE, MODES, SEARCH_KINDS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

DEFAULT_MODEL = "ViT-B-32:laion2b_s34b_b79k"
DEFAULT_SPEECH_MODEL = "small"
"""faster-whisper model for audio without sidecar transcripts: a size name (downloaded on first use)
or a local CTranslate2 model folder."""
DEFAULT_HNSW_THRESHOLD = 50_000
"""Vectors in a collection from which its index is approximate (HNSW) instead of exact (flat): below it an exact
scan stays interactive (512-d vectors on one core: 3 ms at 50k on an AMD EPYC VM, 10 ms on the Xeon VM of
bench/RESULTS.md), above it grows linearly (170 ms at 1M) while HNSW stays near 1 ms (bench/index.py)."""
CONFIG_FILE_NAME = "config.toml"
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
EXECUTORS = ("local", "ray")
KEYWORD_ENGINES = ("auto", "tantivy", "database")
"""Keyword search: ``tantivy`` (a BM25 index with top-k pruning beside the vector indexes, rebuilt from the
database), ``database`` (SQLite FTS5 / PostgreSQL full text), ``auto`` (tantivy when installed)."""
"""Model precision: ``auto`` (CPU: bf16 where native and the agreement check passes, else fp32; CUDA: bf16 or
fp16 autocast), ``fp32``, or ``bf16`` (forced, unchecked); see ``mmsearch.encoders.precision``."""
ENGINES = ("auto", "onnx", "torch")
"""What runs the model's towers: ``auto`` (per tower, the fastest engine that agrees with open_clip fp32, by a
cached calibration), ``onnx`` (ONNX Runtime fp32), ``torch``; see ``mmsearch.encoders.selection``."""

ENV_VARS = {
    "home": "MMSEARCH_HOME",
    "model": "MMSEARCH_MODEL",
    "device": "MMSEARCH_DEVICE",
    "precision": "MMSEARCH_PRECISION",
    "engine": "MMSEARCH_ENGINE",
    "db_url": "MMSEARCH_DB_URL",
    "speech_model": "MMSEARCH_SPEECH_MODEL",
    "hnsw_threshold": "MMSEARCH_HNSW_THRESHOLD",
    "encode_streams": "MMSEARCH_ENCODE_STREAMS",
    "video_interval": "MMSEARCH_VIDEO_INTERVAL",
    "video_max_frames": "MMSEARCH_VIDEO_MAX_FRAMES",
    "vector_url": "MMSEARCH_VECTOR_URL",
    "keyword_engine": "MMSEARCH_KEYWORD_ENGINE",
    "executor": "MMSEARCH_EXECUTOR",
    "ray_address": "MMSEARCH_RAY_ADDRESS",
}


@dataclass(frozen=True)
class Settings:
    """Resolved settings for one Engine.

    ``model`` is ``None`` when nobody asked for one: the engine then uses the
    model the index was built with, or :data:`DEFAULT_MODEL` for a new index.
    """

    home: Path
    model: str | None = None
    device: str = "auto"
    precision: str = "auto"
    engine: str = "auto"
    db_url: str | None = None
    speech_model: str = DEFAULT_SPEECH_MODEL
    batch_size: int | None = None
    """Images per model call; None: the size the engine's calibration measured fastest on this CPU, else
    :func:`default_batch_size` for the device the model runs on."""
    workers: int | None = None
    """Decoding threads; None: :func:`default_workers` for the device the model runs on."""
    encode_streams: int = 0
    """Batches the model encodes at once during ingest, sharing the CPU threads (0: chosen by the encoder)."""
    max_image_pixels: int = 89_478_485  # Pillow's own decompression-bomb threshold
    hnsw_threshold: int = DEFAULT_HNSW_THRESHOLD
    """A collection's index is exact (flat) below this many vectors, HNSW from it on (``mmsearch.index.policy``)."""
    vector_url: str | None = None
    """Where vectors live: None for FAISS files in the home; a Milvus URL (``http://host:19530``) or a Milvus Lite
    file (``/path/milvus.db``) for ``mmsearch.index.milvus_index``."""
    keyword_engine: str = "auto"
    """One of :data:`KEYWORD_ENGINES`."""
    executor: str = "local"
    """Where ingest decodes and encodes images: ``local`` threads or ``ray`` (``mmsearch.ingest.ray_executor``)."""
    ray_address: str | None = None
    """The Ray cluster to join with ``executor = "ray"``; None starts a local one."""
    k: int = 10
    """Search default: how many results ``mmsearch query`` shows when ``-k`` is not given."""
    mode: str = DEFAULT_MODE
    """Search default: the ``--mode`` of ``mmsearch query`` when it is not given."""
    kind: str = IMAGE
    """Search default: the ``--kind`` of ``mmsearch query`` and ``eval`` when it is not given."""
    video_interval: float = 5.0
    """Video: at least one keyframe every this many seconds inside a long shot."""
    video_max_frames: int = 48
    """Video: at most this many keyframes per video."""

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL; SQLite in the home directory unless set."""
        return self.db_url or f"sqlite:///{self.home / 'mmsearch.db'}"

    @property
    def index_dir(self) -> Path:
        """Where the FAISS index files (rebuildable caches) are written."""
        return self.home / "indexes" if not _is_checkout_home(self.home) else self.home


def default_batch_size(device: str) -> int:
    """Images per model call: 32 on a CPU (larger batches are no faster there), 256 on a GPU (it needs big batches
    to be busy; clip-retrieval's ViT-B-32 figures use 256-512)."""
    return 256 if device == "cuda" else 32


def default_workers(device: str, cpus: int | None = None) -> int:
    """Decoding threads. On a CPU the encoder needs the cores more than the decoder does: half of them, 1 to 4
    (1 on 2 cores). With a GPU encoding, decoding is the work left to the CPU: every core, up to 16."""
    cpus = cpus or _usable_cpus()
    return max(1, min(16, cpus)) if device == "cuda" else max(1, min(4, cpus // 2))


def _usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 2


def default_home() -> Path:
    """The home used when none is given.

    Running from a source checkout, that is the checkout's ``indexes/`` folder
    (git-ignored); otherwise the XDG data directory.
    """
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "indexes").is_dir():
        return checkout / "indexes"
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "mmsearch"


def user_config_file() -> Path:
    """The user's own config file, for every home: ``config.toml`` in the platform's config folder (platformdirs:
    ``$XDG_CONFIG_HOME/mmsearch`` on Linux, ``~/Library/Application Support/mmsearch`` on macOS,
    ``%LOCALAPPDATA%\\mmsearch`` on Windows)."""
    from platformdirs import user_config_path

    return user_config_path("mmsearch", appauthor=False) / CONFIG_FILE_NAME


def _is_checkout_home(home: Path) -> bool:
    return home.name == "indexes" and (home.parent / "pyproject.toml").is_file()


def resolve_settings(
    home: str | os.PathLike[str] | None = None,
    *,
    environ: dict[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build :class:`Settings` from arguments, environment and the config file.

    ``overrides`` whose value is ``None`` count as "not given".
    """
    env = os.environ if environ is None else environ
    home_value = home or env.get(ENV_VARS["home"]) or default_home()
    home_path = Path(home_value).expanduser().resolve()

    values: dict[str, Any] = {}
    for path in (user_config_file(), home_path / CONFIG_FILE_NAME):  # lowest precedence first
        values.update(_known(_read_config_file(path), f" in {path}"))
    values.update({key: env[var] for key, var in ENV_VARS.items() if key != "home" and env.get(var)})
    values.update(_known({key: value for key, value in overrides.items() if value is not None}, ""))
    settings = replace(Settings(home=home_path), **_coerce(values))
    _validate(settings)
    return settings


def _known(values: dict[str, Any], where: str) -> dict[str, Any]:
    """``values``, after checking that each names a setting (``where`` says where they came from)."""
    known = {f.name for f in fields(Settings)} - {"home"}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(
            f"unknown setting(s){where}: {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})"
        )
    return values


def _read_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    return {key.replace("-", "_"): value for key, value in data.items()}


_INTEGER_SETTINGS = ("batch_size", "workers", "encode_streams", "max_image_pixels", "hnsw_threshold", "k")


def _coerce(values: dict[str, Any]) -> dict[str, Any]:
    coerced = dict(values)
    for key in (*_INTEGER_SETTINGS, "video_max_frames"):
        if key in coerced:
            try:
                coerced[key] = int(coerced[key])
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{key} must be an integer, got {coerced[key]!r}") from exc
    if "video_interval" in coerced:
        try:
            coerced["video_interval"] = float(coerced["video_interval"])
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"video_interval must be a number, got {coerced['video_interval']!r}") from exc
    return coerced


def _validate(settings: Settings) -> None:
    if settings.device not in DEVICES:
        raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {settings.device!r}")
    if settings.precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {settings.precision!r}")
    if settings.engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {settings.engine!r}")
    if settings.batch_size is not None and settings.batch_size < 1:
        raise ConfigError("batch_size must be at least 1")
    if settings.workers is not None and settings.workers < 1:
        raise ConfigError("workers must be at least 1")
    if settings.encode_streams < 0:
        raise ConfigError("encode_streams must be 0 (automatic) or more")
    if settings.max_image_pixels < 1:
        raise ConfigError("max_image_pixels must be at least 1")
    if settings.hnsw_threshold < 1:
        raise ConfigError("hnsw_threshold must be at least 1")
    if settings.executor not in EXECUTORS:
        raise ConfigError(f"executor must be one of {', '.join(EXECUTORS)}, got {settings.executor!r}")
    if settings.keyword_engine not in KEYWORD_ENGINES:
        known = ", ".join(KEYWORD_ENGINES)
        raise ConfigError(f"keyword_engine must be one of {known}, got {settings.keyword_engine!r}")
    if settings.k < 1:
        raise ConfigError("k must be at least 1")
    if settings.mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {settings.mode!r}")
    if settings.kind not in SEARCH_KINDS:
        raise ConfigError(f"kind must be one of {', '.join(SEARCH_KINDS)}, got {settings.kind!r}")
    if not settings.video_interval > 0:
        raise ConfigError("video_interval must be above 0 seconds")
    if settings.video_max_frames < 1:
        raise ConfigError("video_max_frames must be at least 1")
