"""Writes and verifies the ONNX export of an open_clip text tower that ``onnx_text`` runs without torch.

Needs torch, open_clip, ``onnx`` (torch's exporter writes through it), ``onnxruntime``, ``tokenizers`` and
``ftfy`` (the ``clip`` and ``onnx`` extras). :func:`ensure_text_export` is called whenever the engine loads
the torch encoder; it does the work once per model fingerprint and never raises: a failure is logged and
recorded in the manifest (so it is not retried until the installed versions change), and queries keep
using torch.

Verification: a fixed set of probe texts (short, empty, longer than the context, non-ASCII, HTML entities,
odd whitespace) is tokenized by open_clip's tokenizer and by the saved one (the token ids must be equal)
and encoded by open_clip's float32 text tower and by the exported graph through the runtime class, in one
batch and one by one; every cosine must be >= 1 - 1e-4. The worst is stored in the manifest.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from mmsearch.encoders.base import Encoder, ModelIdentity
from mmsearch.encoders.onnx_text import (
    EXPORT_FORMAT,
    INPUT_NAME,
    MANIFEST_FILE,
    MAX_COSINE_GAP,
    MODEL_FILE,
    OUTPUT_NAME,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
    OnnxTextEncoder,
    OnnxTextError,
    TokenizerSpec,
    enabled,
    export_dir,
    missing_runtime_modules,
    read_manifest,
    usable,
)
from mmsearch.hints import install_hint

log = logging.getLogger(__name__)

OPSET = 17
PROBE_TEXTS = (
    "a dog running on the beach",
    "A RED CAR parked in front of a white house.",
    "",
    "x",
    "two children play soccer in a muddy field while their parents watch from the side line and a small brown dog "
    "runs after the ball, barking at every kick, until the rain starts and everybody hurries home for dinner",
    "Ein Hund läuft über die Straße, très élégant: café crème brûlée",
    "日本語のテキストと中文文本 и немного русского",
    "emoji 🐶🌊🚗 and symbols © ® ™ ½ ✓",
    "fish &amp; chips &lt;b&gt;bold&lt;/b&gt; &amp;amp; &#39;quoted&#39;",
    "  lots   of\twhitespace\n\nand\r\nline breaks  ",
    "the ﬁne ligature, curly “quotes” and mojibake cafÃ©",
    "it's 3:45pm on 12/07/2023 — price $1,299.99 (50% off!)",
)
"""Texts the export must reproduce; the long one is well past the 32-token context of the test fixture."""


def _versions() -> dict[str, str | None]:
    """Installed versions of what the export depends on; a failed export is retried when they change."""
    out: dict[str, str | None] = {"format": str(EXPORT_FORMAT)}
    for name in ("torch", "open_clip_torch", "transformers", "onnx", "onnxruntime", "tokenizers", "ftfy", "regex"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def ensure_text_export(encoder: Encoder, index_dir: Path) -> dict[str, Any] | None:
    """Export ``encoder``'s text tower under ``index_dir`` unless already done (or tried with these versions).

    A verified export in the shared cache (written by ``image_export.ensure_exports``, once per model) is used in
    place: nothing is written to the home, which then holds no copy of it (queries find it through
    ``onnx_text.query_export_folder``). The home gets its own export only where the shared cache has none (it
    could not be written), and a home's own outdated export is refreshed from the shared one.

    Returns the manifest (``status`` ``verified`` or ``failed``), or None when nothing applies (switched off,
    not an open_clip encoder, export packages missing, folder not writable). Never raises.
    """
    if not enabled():
        return None
    identity: ModelIdentity = encoder.identity
    folder = export_dir(index_dir, identity.fingerprint)
    manifest = read_manifest(folder)
    if usable(manifest, identity):
        return manifest
    shared = _shared_export(identity)
    if shared is not None and not folder.exists():  # exported already, for every home: read in place (onnx_text)
        return read_manifest(shared)
    if shared is not None:  # the home's own export is outdated or failed: refresh it from the shared one
        try:
            return _publish(folder, identity, lambda work: _copy_export(shared, work))
        except OSError as exc:
            log.warning("cannot write the ONNX text export to %s: %s", folder, exc)
            return None
    tower = encoder.text_tower
    if tower is None:
        return None
    if manifest is not None and manifest.get("status") == "failed" and manifest.get("versions") == _versions():
        return manifest
    missing = missing_runtime_modules() + [name for name in ("onnx",) if importlib.util.find_spec(name) is None]
    if missing:
        log.info("no torch-free query encoder: %s not installed (%s)", ", ".join(missing), install_hint("onnx"))
        return None
    model, tokenizer = tower
    try:
        return _publish(folder, identity, lambda work: export_text_tower(model, tokenizer, identity, work, encoder))
    except OSError as exc:
        log.warning("cannot write the ONNX text export to %s: %s", folder, exc)
        return None


def _shared_export(identity: ModelIdentity) -> Path | None:
    """The verified text export in the shared cache (``mmsearch.encoders.export_cache``), if there is one."""
    from mmsearch.encoders.export_cache import model_folder

    shared = model_folder(identity.fingerprint) / "text"
    return shared if usable(read_manifest(shared), identity) else None


def _copy_export(shared: Path, work: Path) -> dict[str, Any]:
    for path in shared.iterdir():
        if path.is_file():
            shutil.copy2(path, work / path.name)
    manifest = read_manifest(work)
    if manifest is None:
        raise OnnxTextError(f"the shared export in {shared} has no readable manifest")
    return manifest


def _publish(folder: Path, identity: ModelIdentity, build: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """Build the export in a temporary sibling folder, then rename it into place (all or nothing)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        try:
            manifest = build(work)
        except Exception as exc:  # torch's exporter and onnxruntime raise many kinds; all mean "keep torch"
            reason = f"{type(exc).__name__}: {exc}"
            log.warning("the torch-free query encoder is not used for this model: %s", reason)
            for path in work.iterdir():
                path.unlink()
            manifest = _manifest_base(identity) | {"status": "failed", "reason": reason[:2000]}
            _write_json(work / MANIFEST_FILE, manifest)
        current = read_manifest(folder)
        if usable(current, identity):  # another process published a verified export meanwhile: keep it
            return current  # type: ignore[return-value]
        _replace_folder(work, folder)
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _replace_folder(work: Path, folder: Path) -> None:
    """Rename ``work`` to ``folder``; an older (failed or outdated) export there is moved aside first."""
    if folder.exists():
        stale = folder.with_name(f".{folder.name}-stale-{os.getpid()}")
        try:
            folder.rename(stale)
        except OSError:
            return  # another process is replacing it right now; its result stands
        shutil.rmtree(stale, ignore_errors=True)
    with contextlib.suppress(OSError):  # another process published first; its export is equivalent
        work.rename(folder)


def _manifest_base(identity: ModelIdentity) -> dict[str, Any]:
    return {
        "format": EXPORT_FORMAT,
        "fingerprint": identity.fingerprint,
        "identity": identity.to_dict(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def export_text_tower(
    model: Any, tokenizer: Any, identity: ModelIdentity, work: Path, encoder: Any = None
) -> dict[str, Any]:
    """Write tokenizer.json, text.onnx(+ .data) and manifest.json into ``work``; raises when not verified.

    ``model`` is an open_clip model and ``tokenizer`` its open_clip tokenizer; ``encoder``, when given, is the
    live encoder whose own vectors are compared too (for information: it may run in reduced precision).
    """
    spec, hf_tokenizer = describe_tokenizer(tokenizer)  # first: an unsupported tokenizer fails without torch
    import torch

    hf_tokenizer.save(str(work / TOKENIZER_FILE))
    tower = _text_tower(_float32_cpu(model))
    probes = list(PROBE_TEXTS)
    reference_ids = tokenizer(probes)
    with torch.inference_mode():
        reference = tower(reference_ids).numpy()
    _export_onnx(tower, reference_ids[:3], work)
    manifest = _manifest_base(identity) | {
        "status": "checking",
        "tokenizer": spec.to_dict(),
        "model_file": MODEL_FILE,
    }
    runtime = OnnxTextEncoder(work, manifest)
    ids = runtime.tokenizer(probes)
    for text, ours, theirs in zip(probes, ids, reference_ids.numpy(), strict=True):
        if not np.array_equal(ours, theirs):
            raise OnnxTextError(f"the saved tokenizer gives other token ids than open_clip's for {text!r}")
    cosines = [_row_cosines(runtime.encode_texts(probes), reference)]
    cosines += [_row_cosines(runtime.encode_texts([text]), reference[i : i + 1]) for i, text in enumerate(probes)]
    worst = float(np.min(np.concatenate(cosines)))
    check = {"probes": len(probes), "tokens_equal": True, "worst_cosine": worst, "min_allowed": 1.0 - MAX_COSINE_GAP}
    if encoder is not None:
        check["worst_cosine_vs_loaded_encoder"] = float(np.min(_row_cosines(encoder.encode_texts(probes), reference)))
    if worst < 1.0 - MAX_COSINE_GAP:
        raise OnnxTextError(f"the ONNX text tower agrees with open_clip only to cosine {worst:.6f}")
    manifest.update(status="verified", check=check)
    _write_json(work / MANIFEST_FILE, manifest)
    return manifest


def _row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def _float32_cpu(model: Any) -> Any:
    """The model itself when it is float32 on the CPU, else a float32 CPU copy (the live one may be bf16/CUDA)."""
    import torch

    model = getattr(model, "_orig_mod", model)  # torch.compile wrapper
    params = list(model.parameters())
    if all(p.dtype == torch.float32 and p.device.type == "cpu" for p in params):
        return model
    return copy.deepcopy(model).to(device="cpu", dtype=torch.float32).eval()


def _text_tower(model: Any) -> Any:
    """A module mapping token ids to unit text vectors with ``model``'s text tower (what gets exported)."""
    import torch

    class TextTower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            return self.model.encode_text(input_ids, normalize=True)

    return TextTower().eval()


def _export_onnx(tower: Any, example_ids: Any, work: Path) -> None:
    """Trace to ONNX (batch axis dynamic), then save it optimised by onnxruntime with the weights beside it."""
    import warnings

    import onnxruntime as ort
    import torch

    raw = work / "raw.onnx"
    with warnings.catch_warnings(), torch.inference_mode(), traceable_attention():
        warnings.simplefilter("ignore")  # the tracer's notes on data-dependent Python values; the check decides
        torch.onnx.export(
            tower,
            (example_ids,),
            str(raw),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED  # portable across CPUs
    options.optimized_model_filepath = str(work / MODEL_FILE)
    options.add_session_config_entry("session.optimized_model_external_initializers_file_name", WEIGHTS_FILE)
    options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    ort.InferenceSession(str(raw), options, providers=["CPUExecutionProvider"])
    raw.unlink()


@contextlib.contextmanager
def traceable_attention() -> Iterator[None]:
    """torch's fused attention fast path (``aten::_native_multi_head_attention``, taken by ``nn.MultiheadAttention``
    in inference) has no ONNX export: switch it off while tracing, so ViT / OpenAI-style towers export."""
    import torch

    enabled = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(enabled)


def describe_tokenizer(tokenizer: Any) -> tuple[TokenizerSpec, Any]:
    """The cleaning settings and a ``tokenizers.Tokenizer`` equivalent to an open_clip tokenizer.

    Handles open_clip's ``HFTokenizer`` (standard mode) and its ``SimpleTokenizer`` (OpenAI-style BPE, rebuilt
    from its own vocabulary); anything else raises :class:`OnnxTextError` (and queries keep using torch).
    """
    context_length = int(getattr(tokenizer, "context_length", 0) or 0)
    if context_length < 2:
        raise OnnxTextError(f"the tokenizer has no usable context length ({context_length})")
    clean = _clean_mode(getattr(tokenizer, "clean_fn", None))
    wrapped = getattr(tokenizer, "tokenizer", None)
    if wrapped is not None and hasattr(tokenizer, "tokenizer_mode"):
        if tokenizer.tokenizer_mode:
            raise OnnxTextError(f"open_clip tokenizer mode {tokenizer.tokenizer_mode!r} is not supported")
        hf = _hf_backend(wrapped, context_length)
        strip = wrapped.sep_token_id if getattr(tokenizer, "strip_sep_token", False) else None
        return TokenizerSpec(clean, context_length, strip), hf
    if type(tokenizer).__name__ == "SimpleTokenizer" and hasattr(tokenizer, "bpe_ranks"):
        if getattr(tokenizer, "reduction_fn", None) is not None:
            raise OnnxTextError("open_clip's token reduction (reduction_mask) is not supported")
        pattern = tokenizer.pat
        if not pattern.flags & _regex_ignorecase():
            raise OnnxTextError("open_clip's SimpleTokenizer word pattern is not the expected case-insensitive one")
        spec = TokenizerSpec(clean, context_length, word_pattern=pattern.pattern)
        return spec, _simple_as_hf(tokenizer, context_length)
    raise OnnxTextError(f"tokenizer {type(tokenizer).__name__} is not supported by the torch-free path")


def _regex_ignorecase() -> int:
    import regex

    return int(regex.IGNORECASE)


def _clean_mode(clean_fn: Any) -> str:
    name = getattr(clean_fn, "__name__", "")
    modes = {"_clean_whitespace": "whitespace", "_clean_lower": "lower"}
    if name not in modes:
        raise OnnxTextError(f"text cleaning {name or clean_fn!r} is not supported by the torch-free path")
    return modes[name]


def _hf_backend(wrapped: Any, context_length: int) -> Any:
    """A copy of the Hugging Face fast tokenizer's backend, truncating and padding as open_clip asks."""
    from tokenizers import Tokenizer

    backend = getattr(wrapped, "backend_tokenizer", None)
    if backend is None or wrapped.pad_token_id is None:
        raise OnnxTextError(f"{type(wrapped).__name__} is not a fast tokenizer with a padding token")
    hf = Tokenizer.from_str(backend.to_str())
    hf.enable_truncation(max_length=context_length, direction=getattr(wrapped, "truncation_side", "right"))
    hf.enable_padding(
        length=context_length,
        direction=getattr(wrapped, "padding_side", "right"),
        pad_id=wrapped.pad_token_id,
        pad_token=wrapped.pad_token,
        pad_type_id=getattr(wrapped, "pad_token_type_id", 0),
    )
    return hf


def _simple_as_hf(simple: Any, context_length: int) -> Any:
    """open_clip's SimpleTokenizer (byte-level BPE with ``</w>`` word ends) as a ``tokenizers`` tokenizer.

    It reads words already split by the SimpleTokenizer's own pattern (:attr:`TokenizerSpec.word_pattern`).
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    special = [simple.decoder[token_id] for token_id in simple.all_special_ids]
    bpe = models.BPE(vocab=dict(simple.encoder), merges=list(simple.bpe_ranks), end_of_word_suffix="</w>")
    hf = Tokenizer(bpe)
    hf.add_special_tokens(special)
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    sot, eot = simple.decoder[simple.sot_token_id], simple.decoder[simple.eot_token_id]
    hf.post_processor = processors.TemplateProcessing(
        single=f"{sot} $A {eot}", special_tokens=[(sot, simple.sot_token_id), (eot, simple.eot_token_id)]
    )
    hf.enable_truncation(max_length=context_length)
    hf.enable_padding(length=context_length, pad_id=0, pad_token=simple.decoder[0])
    return hf
