"""The torch-free query text encoder against open_clip: the fixture model's export, a fresh-process CLI query
that never imports torch, and open_clip's OpenAI-style tokenizer rebuilt for the ``tokenizers`` library.

Skipped, with the reason, where open_clip, the export packages or the fixture model are missing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import FIXTURE_MODEL, require_fixture_model

pytestmark = pytest.mark.integration

MAX_GAP = 1e-4
LONG = (
    "a man in a blue jacket and a woman in a red coat walk their two small dogs along the snowy path beside the "
    "frozen lake while children skate in the distance and a vendor sells hot chocolate from a wooden stall"
)
TEXTS = [
    "a dog",
    "Two girls in bathing suits play in the surf at the beach.",
    LONG,
    LONG + " and then the sun goes down behind the hills",  # the same first 32 tokens: truncated alike
    " ".join(["word"] * 40),
    "Une fille saute dans la piscine à côté de l'hôtel",
    "犬が公園で走っている",
    "Ωmega ß straße ﬀ Ǆ ǆ — “quoted” ‘single’ …",
    "<b>bold</b> &amp;amp; &quot;q&quot; &#x27;hex&#x27;",
    "\u200bzero\u200dwidth\u00a0nbsp\u3000ideographic space",
    "🏄‍♂️ surfer 👨‍👩‍👧 family 🇳🇿",
]
PROBE = """
import json, sys
from click.testing import CliRunner
from mmsearch.cli import cli
result = CliRunner().invoke(cli, {args!r})
print(json.dumps({{"exit": result.exit_code, "torch": "torch" in sys.modules, "open_clip": "open_clip" in sys.modules,
                  "onnxruntime": "onnxruntime" in sys.modules, "output": result.output}}))
"""


def require_export_packages() -> None:
    require_fixture_model()
    for name in ("onnx", "onnxruntime", "tokenizers", "ftfy"):
        pytest.importorskip(name, reason=f"{name} not installed (pip install 'mmsearch[onnx]')")


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def reference_vectors(model, tokenizer, texts: list[str]) -> np.ndarray:
    """open_clip's own float32 text vectors."""
    import torch

    from mmsearch.encoders.onnx_export import _float32_cpu

    with torch.inference_mode():
        return _float32_cpu(model).encode_text(tokenizer(texts), normalize=True).numpy()


@pytest.fixture(scope="module")
def fixture_export(tmp_path_factory):
    """The fixture model's encoder and its export into a fresh folder."""
    require_export_packages()
    from mmsearch.encoders import create_encoder
    from mmsearch.encoders.onnx_export import ensure_text_export

    encoder = create_encoder(FIXTURE_MODEL, "cpu")
    index_dir = tmp_path_factory.mktemp("onnx-export")
    manifest = ensure_text_export(encoder, index_dir)
    return encoder, index_dir, manifest


def test_the_export_is_verified_and_agrees_with_open_clip(fixture_export) -> None:
    from mmsearch.encoders.onnx_text import load_text_encoder

    encoder, index_dir, manifest = fixture_export
    assert manifest["status"] == "verified", manifest.get("reason")
    assert manifest["fingerprint"] == encoder.identity.fingerprint
    assert manifest["check"]["tokens_equal"] and manifest["check"]["worst_cosine"] >= 1 - MAX_GAP
    runtime = load_text_encoder(index_dir, encoder.identity)
    assert runtime is not None
    model, tokenizer = encoder.text_tower
    np.testing.assert_array_equal(runtime.tokenizer(TEXTS), tokenizer(TEXTS).numpy())  # truncation at 32 included
    ours = runtime.encode_texts(TEXTS)
    assert ours.shape == (len(TEXTS), 256) and ours.dtype == np.float32
    assert cosines(ours, reference_vectors(model, tokenizer, TEXTS)).min() >= 1 - MAX_GAP
    singles = np.concatenate([runtime.encode_texts([text]) for text in TEXTS])
    assert cosines(singles, ours).min() >= 1 - 1e-6
    assert cosines(ours[2:3], ours[3:4])[0] >= 1 - 1e-6  # past the context, the tail is cut as open_clip cuts it


def test_a_second_load_of_the_model_reuses_the_export(fixture_export) -> None:
    from mmsearch.encoders.onnx_export import ensure_text_export
    from mmsearch.encoders.onnx_text import MANIFEST_FILE, query_export_folder

    encoder, index_dir, manifest = fixture_export
    # the home's own export, or the shared cache's when that held one already (read in place, nothing copied)
    path = query_export_folder(index_dir, encoder.identity.fingerprint) / MANIFEST_FILE
    written = path.stat().st_mtime_ns
    assert ensure_text_export(encoder, index_dir) == manifest
    assert path.stat().st_mtime_ns == written


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=120))
def test_the_saved_tokenizer_gives_open_clips_ids(fixture_export, text: str) -> None:
    from mmsearch.encoders.onnx_text import load_text_encoder

    encoder, index_dir, _ = fixture_export
    runtime = load_text_encoder(index_dir, encoder.identity)
    np.testing.assert_array_equal(runtime.tokenizer([text]), encoder.text_tower[1]([text]).numpy())


def cli_probe(args: list[str], **env: str) -> dict:
    import os

    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=args)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_fresh_process_query_uses_the_export_without_torch(dev_engine) -> None:
    require_export_packages()
    engine, _ = dev_engine
    text = "a black and white dog leaps to catch a frisbee on the grass"
    probe = cli_probe(["--home", str(engine.settings.home), "query", text, "--json", "--mode", "dense", "-k", "10"])
    assert probe["exit"] == 0, probe["output"]
    assert (probe["torch"], probe["open_clip"], probe["onnxruntime"]) == (False, False, True)
    hits = json.loads(probe["output"])["hits"]
    expected = engine.search(text, k=10, mode="dense")  # this engine has the torch encoder loaded
    assert [hit["path"] for hit in hits] == [hit.path for hit in expected]
    np.testing.assert_allclose([hit["score"] for hit in hits], [hit.score for hit in expected], atol=1e-4)
    # the console path itself (`python -m mmsearch`), its imports listed by -X importtime
    home = str(engine.settings.home)
    command = [sys.executable, "-X", "importtime", "-m", "mmsearch", "--home", home, "query", "two dogs play", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time")}
    assert "onnxruntime" in imported and not imported & {"torch", "open_clip", "transformers"}
    assert json.loads(done.stdout)["hits"]


def test_a_fresh_process_text_query_imports_only_the_search_path(dev_engine) -> None:
    """With the export, a text query needs neither Pillow nor torch, ingest, checks or Alembic."""
    require_export_packages()
    from tests.cli.test_import_diet import NEVER, forbidden, imported

    engine, _ = dev_engine
    args = ["--home", str(engine.settings.home), "query", "a brown dog swims in a lake", "--json", "--no-service"]
    result, modules = imported(args)
    assert result["exit"] == 0 and json.loads(result["output"])["hits"]
    assert "onnxruntime" in modules and forbidden(modules, (*NEVER, "PIL")) == set()


def test_a_mismatched_export_is_never_used_and_the_switch_means_torch(dev_engine) -> None:
    """An export whose manifest names another model is not read: the query is answered by the model itself (torch,
    or the verified shared export of the same model where the engine's text side starts on it: text_side.py), with
    the vectors of open_clip; and the home's export is written anew."""
    require_export_packages()
    from mmsearch.encoders.onnx_text import MANIFEST_FILE, query_export_folder

    engine, _ = dev_engine
    home = str(engine.settings.home)
    index_dir, fingerprint = engine.settings.index_dir, engine.encoder.identity.fingerprint
    path = query_export_folder(index_dir, fingerprint) / MANIFEST_FILE  # the home's, or the shared cache's
    original = path.read_text()
    text = "a man rides a bicycle down a hill"
    try:
        path.write_text(json.dumps({**json.loads(original), "fingerprint": "0" * 16}))
        probe = cli_probe(["--home", home, "query", text, "--json", "--mode", "dense", "-k", "5"])
        assert probe["exit"] == 0, probe["output"]
        assert probe["torch"] or probe["onnxruntime"]
        exported = query_export_folder(index_dir, fingerprint) / MANIFEST_FILE
        assert json.loads(exported.read_text())["fingerprint"] == fingerprint  # exported anew
    finally:
        path.write_text(original)
    expected = engine.search(text, k=5, mode="dense")  # this engine's own torch fp32 encoder
    hits = json.loads(probe["output"])["hits"]
    if not probe["torch"]:  # the shared export: open_clip's fp32 vectors within 1e-4 (torch may run bf16 here)
        assert [hit["path"] for hit in hits] == [hit.path for hit in expected]
        np.testing.assert_allclose([hit["score"] for hit in hits], [hit.score for hit in expected], atol=1e-4)
    # The switch turns off the ONNX text path; the torch engine for the model (MMSEARCH_ENGINE) keeps ONNX Runtime
    # out of the image tower too, so nothing of onnxruntime loads.
    probe = cli_probe(
        ["--home", home, "query", "a woman rides a bicycle", "--json"], MMSEARCH_ONNX_TEXT="0", MMSEARCH_ENGINE="torch"
    )
    assert probe["exit"] == 0 and probe["torch"] and not probe["onnxruntime"]


def test_openai_style_tokenizer_is_rebuilt_exactly(tmp_path: Path) -> None:
    """open_clip's SimpleTokenizer (bundled vocabulary, no download) as a tokenizers.Tokenizer: same ids."""
    require_export_packages()
    import open_clip

    from mmsearch.encoders.onnx_export import describe_tokenizer
    from mmsearch.encoders.onnx_text import QueryTokenizer

    simple = open_clip.get_tokenizer("ViT-B-32")
    spec, saved = describe_tokenizer(simple)
    assert (spec.clean, spec.context_length) == ("lower", 77)
    saved.save(str(tmp_path / "tokenizer.json"))
    ours = QueryTokenizer(tmp_path / "tokenizer.json", spec)
    texts = [*TEXTS, " ".join(["supercalifragilistic"] * 30), "it's we'll they've I'M", "3.14159 x²"]
    np.testing.assert_array_equal(ours(texts), simple(texts).numpy())

    @settings(max_examples=200, deadline=None)
    @given(st.text(max_size=200))
    def same_ids(text: str) -> None:
        np.testing.assert_array_equal(ours([text]), simple([text]).numpy())

    same_ids()


def test_a_tiny_openai_style_model_exports_and_agrees(tmp_path: Path) -> None:
    """The OpenAI-style text tower (causal transformer, argmax pooling) exports too; random weights suffice."""
    require_export_packages()
    import open_clip

    from mmsearch.encoders.base import ModelIdentity
    from mmsearch.encoders.onnx_export import export_text_tower
    from mmsearch.encoders.onnx_text import OnnxTextEncoder

    config = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
    }
    (tmp_path / "mmsearch-tiny-clip.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / "mmsearch-tiny-clip.json")
    model = open_clip.create_model("mmsearch-tiny-clip").eval()
    tokenizer = open_clip.get_tokenizer("mmsearch-tiny-clip")
    identity = ModelIdentity("mmsearch-tiny-clip", None, 32, {"context_length": 77})
    work = tmp_path / "export"
    work.mkdir()
    manifest = export_text_tower(model, tokenizer, identity, work)
    assert manifest["status"] == "verified" and manifest["check"]["worst_cosine"] >= 1 - MAX_GAP
    ours = OnnxTextEncoder(work, manifest).encode_texts(TEXTS)
    assert cosines(ours, reference_vectors(model, tokenizer, TEXTS)).min() >= 1 - MAX_GAP
