"""Torch-free image encoding: a verified ONNX export of a model's image tower, run with onnxruntime.

``mmsearch.encoders.image_export`` writes, once per model fingerprint, into the shared cache
(:func:`mmsearch.encoders.export_cache.model_folder`)::

    image/manifest.json   identity, the agreement check against open_clip's float32 tower
          image.onnx      pixels (n, 3, h, w) float32, normalised -> unit vectors (n, dim)
          image.onnx.data its weights

Pixels are prepared by :class:`mmsearch.encoders.preprocess.ImagePreprocess` (open_clip's transform in Pillow +
numpy; the engine's encoders use its ``fast`` path, checked on embeddings against open_clip's own transform).
An export is used only when its manifest's identity is the model's and its recorded check passed: worst cosine
>= :data:`MIN_WORST_COSINE` and mean >= :data:`MIN_MEAN_COSINE` against open_clip float32 on probe images run
through open_clip's own transform (the export is checked with the exact preprocessing).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mmsearch.encoders.base import ModelIdentity, l2_normalise
from mmsearch.encoders.export_cache import model_folder, read_json
from mmsearch.encoders.preprocess import ImagePreprocess
from mmsearch.errors import MmsearchError

EXPORT_FORMAT = 1
FOLDER = "image"
MANIFEST_FILE = "manifest.json"
MODEL_FILE = "image.onnx"
WEIGHTS_FILE = "image.onnx.data"
INPUT_NAME = "pixel_values"
OUTPUT_NAME = "image_embedding"
MIN_WORST_COSINE = 0.995
MIN_MEAN_COSINE = 0.999
"""The bar an exported image tower must clear against open_clip's float32 vectors (issue 13); measured exports
sit near 0.99999 (fp32 graph, different kernels)."""
DRAFT_MARGIN = 1.5
"""As :data:`mmsearch.encoders.openclip.DRAFT_MARGIN` (JPEG draft decoding never below 1.5x the input side)."""


class OnnxImageError(MmsearchError):
    """An image-tower export cannot be written, verified or loaded."""


def image_folder(fingerprint: str) -> Path:
    return model_folder(fingerprint) / FOLDER


def usable(manifest: dict[str, Any] | None, identity: ModelIdentity) -> bool:
    """True when ``manifest`` describes a verified image export of exactly this model, in this format."""
    if manifest is None or manifest.get("status") != "verified" or manifest.get("format") != EXPORT_FORMAT:
        return False
    try:
        recorded = ModelIdentity.from_dict(manifest["identity"])
    except (KeyError, TypeError, ValueError):
        return False
    check = manifest.get("check") or {}
    worst, mean = check.get("worst_cosine"), check.get("mean_cosine")
    return (
        recorded.fingerprint == identity.fingerprint == manifest.get("fingerprint")
        and isinstance(worst, (int, float))
        and isinstance(mean, (int, float))
        and worst >= MIN_WORST_COSINE
        and mean >= MIN_MEAN_COSINE
    )


def read_image_manifest(identity: ModelIdentity) -> dict[str, Any] | None:
    """The verified export's manifest for ``identity`` in the shared cache, or None."""
    manifest = read_json(image_folder(identity.fingerprint) / MANIFEST_FILE)
    return manifest if usable(manifest, identity) else None


def cpu_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class OnnxImageEncoder:
    """The image half of an encoder: prepare (Pillow + numpy) and encode (onnxruntime); unit float32 rows.

    ``parallel_batches`` works as the torch encoder's: on a CPU with 2+ cores, batches run concurrently, each on
    one onnxruntime thread (a session with one intra-op thread runs a call on the calling thread), which keeps
    the cores busy between operators and shares them with the decoders without thread-pool barriers.
    """

    device = "cpu"

    def __init__(
        self, folder: Path, manifest: dict[str, Any], streams: int = 0, fast: bool = False, resizer: str = "pillow"
    ) -> None:
        import onnxruntime as ort

        self.identity = ModelIdentity.from_dict(manifest["identity"])
        self.preprocess = ImagePreprocess.from_config(self.identity.preprocess, fast, resizer)
        self._threads = cpu_threads()
        self._streams = streams or (2 if self._threads >= 2 else 1)
        self._session = _session(ort, folder, max(1, self._threads // self._streams))
        dim = self._session.get_outputs()[0].shape[-1]
        if dim != self.identity.dim:
            raise OnnxImageError(f"the export in {folder} gives {dim}-d vectors, the model {self.identity.dim}-d")

    @property
    def min_decode_size(self) -> tuple[int, int]:
        side = max(self.preprocess.size)
        return int(np.ceil(side * DRAFT_MARGIN)), int(np.ceil(side * DRAFT_MARGIN))

    @contextlib.contextmanager
    def parallel_batches(self, requested: int = 0) -> Iterator[int]:
        """How many :meth:`encode_prepared` calls may run at once (the session's threads were sized for it)."""
        yield max(1, requested or self._streams)

    def prepare_image(self, image: Image.Image) -> np.ndarray:
        return self.preprocess.prepare(image)

    def encode_prepared(self, prepared: Sequence[Any]) -> np.ndarray:
        if not prepared:
            return np.zeros((0, self.identity.dim), dtype=np.float32)
        return self.encode_batch(self.preprocess.batch(prepared))

    def encode_batch(self, pixels: np.ndarray) -> np.ndarray:
        """Unit vectors of an already normalised float32 NCHW batch."""
        return l2_normalise(self._session.run([OUTPUT_NAME], {INPUT_NAME: pixels})[0])


def _session(ort: Any, folder: Path, threads: int) -> Any:
    """An onnxruntime session on the export, fully optimised for this CPU (layouts, fusions).

    The first load optimises the portable graph (about 0.2-0.9 s for the fixture) and saves the result beside it
    as ``optimized-<cpu key>.onnx`` (machine-specific, hence the key); later loads read that with optimisation
    off: 4x faster to load, the same kernels and outputs (measured: identical vectors, same images/s).
    """
    from mmsearch.encoders.engine_choice import cpu_key

    optimised = folder / f"optimized-{cpu_key()}.onnx"
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if optimised.is_file():
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        return ort.InferenceSession(str(optimised), options, providers=["CPUExecutionProvider"])
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    staging = Path(tempfile.mkdtemp(prefix=".optimizing-", dir=folder)) if os.access(folder, os.W_OK) else None
    if staging is not None:
        options.optimized_model_filepath = str(staging / optimised.name)
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_file_name", optimised.name + ".data"
        )
        options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    try:
        session = ort.InferenceSession(str(folder / MODEL_FILE), options, providers=["CPUExecutionProvider"])
        if staging is not None and (staging / optimised.name).is_file():
            for name in (optimised.name + ".data", optimised.name):  # the weights first: the graph names them
                if (staging / name).is_file():
                    os.replace(staging / name, folder / name)
        return session
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def load_image_encoder(
    identity: ModelIdentity, streams: int = 0, fast: bool = False, resizer: str = "pillow"
) -> OnnxImageEncoder | None:
    """The verified export of ``identity``'s image tower from the shared cache, or None (none, not verified,
    onnxruntime missing or the file unreadable). ``fast``: prepare with the cheaper resize and normalisation
    (:class:`ImagePreprocess`'s ``fast``, what the engine runs; ``resizer`` ``simd`` for its SIMD passes); else
    open_clip's exact pixels."""
    manifest = read_image_manifest(identity)
    if manifest is None:
        return None
    try:
        return OnnxImageEncoder(image_folder(identity.fingerprint), manifest, streams, fast, resizer)
    except ImportError:
        return None
    except Exception as exc:  # onnxruntime raises its own kinds (a truncated file, an unsupported opset)
        raise OnnxImageError(
            f"cannot load the ONNX image tower of {identity.spec}: {type(exc).__name__}: {exc}"
        ) from exc
