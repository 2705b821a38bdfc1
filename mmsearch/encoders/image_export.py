"""Writes both towers of an open_clip model to the shared ONNX cache, once per model fingerprint, verified.

Needs torch, open_clip, onnx and onnxruntime (the ``clip`` and ``onnx`` extras). The image tower is
traced to ONNX (batch axis dynamic, opset 17) and checked against open_clip's float32 model on probe images of
several shapes run through **open_clip's own transform**, while the export runs on pixels prepared by
:class:`mmsearch.encoders.preprocess.ImagePreprocess`: the check covers the export and the torch-free
preprocessing together, on embeddings (worst cosine >= 0.995 and mean >= 0.999, see
:mod:`mmsearch.encoders.onnx_image`). The text tower goes through :func:`onnx_export.export_text_tower` and its
stricter check (every probe cosine >= 1 - 1e-4).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from mmsearch.encoders import onnx_image, onnx_text
from mmsearch.encoders.base import ModelIdentity
from mmsearch.encoders.export_cache import model_folder, read_json
from mmsearch.encoders.onnx_export import (
    OPSET,
    _float32_cpu,
    _manifest_base,
    _publish,
    _row_cosines,
    _versions,
    _write_json,
    traceable_attention,
)
from mmsearch.encoders.onnx_export import export_text_tower as _export_text_tower
from mmsearch.encoders.precision import probe_images

log = logging.getLogger(__name__)

PROBE_SHAPES = ((320, 240), (240, 320), (500, 375), (96, 80), (224, 224), (1024, 300))
"""(width, height) of the probe images: landscape, portrait, Flickr-like, smaller than the input (upscaled),
exactly the input side, and a panorama."""


def export_status(identity: ModelIdentity) -> dict[str, dict[str, Any] | None]:
    """The manifests of both towers in the shared cache that settle them for this model: a verified export of it,
    or its failure recorded with these package versions (not retried). None where there is none, or where the
    manifest is unreadable, describes another model or format, or failed with other versions: export again."""
    folder = model_folder(identity.fingerprint)
    image = read_json(folder / onnx_image.FOLDER / onnx_image.MANIFEST_FILE)
    text = read_json(folder / "text" / onnx_text.MANIFEST_FILE)
    return {
        "image": image if onnx_image.usable(image, identity) or _failed_here(image, identity) else None,
        "text": text if onnx_text.usable(text, identity) or _failed_here(text, identity) else None,
    }


def _failed_here(manifest: dict[str, Any] | None, identity: ModelIdentity) -> bool:
    """True for a failed export of this very model with the packages installed now."""
    return (
        manifest is not None
        and manifest.get("status") == "failed"
        and manifest.get("fingerprint") == identity.fingerprint
        and manifest.get("versions") == _versions()
    )


def ensure_exports(model: Any, preprocess: Any, tokenizer: Any, identity: ModelIdentity) -> dict[str, Any]:
    """Export and verify whichever tower is not in the shared cache yet; the manifests by tower.

    A tower whose export failed is recorded as failed (and not retried for this model); never raises for an
    export that does not verify. ``OSError`` (an unwritable cache) propagates.
    """
    manifests: dict[str, Any] = {}
    status = export_status(identity)
    folder = model_folder(identity.fingerprint)
    image = status["image"]
    if image is None:
        log.info("exporting the image tower of %s to ONNX (once per model)", identity.spec)
        image = _publish(
            folder / onnx_image.FOLDER, identity, lambda work: export_image_tower(model, preprocess, identity, work)
        )
    manifests["image"] = image
    text = status["text"]
    if text is None:
        log.info("exporting the text tower of %s to ONNX (once per model)", identity.spec)
        text = _publish(folder / "text", identity, lambda work: _export_text_tower(model, tokenizer, identity, work))
    manifests["text"] = text
    return manifests


def text_folder(identity: ModelIdentity) -> Path:
    return model_folder(identity.fingerprint) / "text"


def export_image_tower(model: Any, preprocess: Any, identity: ModelIdentity, work: Path) -> dict[str, Any]:
    """Write image.onnx(+ .data) and manifest.json into ``work``; raises when the export does not agree."""
    import torch

    tower = _image_tower(_float32_cpu(model))
    pictures = [image for shape in PROBE_SHAPES for image in probe_images(2, shape)]
    with torch.inference_mode():
        reference = tower(torch.stack([preprocess(picture) for picture in pictures])).numpy()
    example = torch.zeros((2, 3, *_input_size(identity)), dtype=torch.float32)
    _export(tower, example, work)
    manifest = _manifest_base(identity) | {"status": "checking", "format": onnx_image.EXPORT_FORMAT}
    runtime = onnx_image.OnnxImageEncoder(work, manifest)
    ours = runtime.encode_prepared([runtime.prepare_image(picture) for picture in pictures])
    singles = np.concatenate([runtime.encode_prepared([runtime.prepare_image(p)]) for p in pictures[:2]])
    cosines = np.concatenate([_row_cosines(ours, reference), _row_cosines(singles, reference[:2])])
    worst, mean = float(cosines.min()), float(cosines.mean())
    check = {
        "probes": len(pictures),
        "worst_cosine": worst,
        "mean_cosine": mean,
        "min_worst": onnx_image.MIN_WORST_COSINE,
        "min_mean": onnx_image.MIN_MEAN_COSINE,
        "reference": "open_clip float32 model with open_clip's transform",
    }
    if worst < onnx_image.MIN_WORST_COSINE or mean < onnx_image.MIN_MEAN_COSINE:
        raise onnx_image.OnnxImageError(
            f"the ONNX image tower agrees with open_clip only to worst cosine {worst:.6f}, mean {mean:.6f}"
        )
    manifest.update(status="verified", check=check, model_file=onnx_image.MODEL_FILE)
    _write_json(work / onnx_image.MANIFEST_FILE, manifest)
    return manifest


def _input_size(identity: ModelIdentity) -> tuple[int, int]:
    size = identity.preprocess.get("size", 224)
    return (size, size) if isinstance(size, int) else (int(size[-2]), int(size[-1]))


def _image_tower(model: Any) -> Any:
    """A module mapping normalised pixels to unit image vectors with ``model``'s image tower."""
    import torch

    class ImageTower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return self.model.encode_image(pixel_values, normalize=True)

    return ImageTower().eval()


def _export(tower: Any, example: Any, work: Path) -> None:
    """Trace to ONNX with the batch axis dynamic; the weights go beside the graph."""
    import warnings

    import onnx
    import torch

    raw = work / "raw.onnx"
    with warnings.catch_warnings(), torch.inference_mode(), traceable_attention():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            tower,
            (example.contiguous(),),
            str(raw),
            input_names=[onnx_image.INPUT_NAME],
            output_names=[onnx_image.OUTPUT_NAME],
            dynamic_axes={onnx_image.INPUT_NAME: {0: "batch"}, onnx_image.OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    graph = onnx.load(str(raw))
    onnx.save_model(
        graph,
        str(work / onnx_image.MODEL_FILE),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=onnx_image.WEIGHTS_FILE,
        size_threshold=1024,
    )
    for path in work.glob("raw.onnx*"):
        path.unlink()
