import numpy as np
import pytest
from PIL import Image

from mmsearch.encoders import canonical_model_name, create_encoder
from mmsearch.encoders.fake import FakeEncoder
from mmsearch.encoders.openclip import OpenClipSpec
from mmsearch.errors import UnknownModelError


def test_fake_encoder_is_deterministic_and_normalised() -> None:
    image = Image.new("RGB", (20, 10), (200, 30, 40))
    first, second = FakeEncoder(24), FakeEncoder(24)
    a, b = first.encode_images([image]), second.encode_images([image])
    np.testing.assert_array_equal(a, b)
    texts = first.encode_texts(["a dog", "a cat", "a dog"])
    assert a.dtype == texts.dtype == np.float32
    assert a.shape == (1, 24) and texts.shape == (3, 24)
    np.testing.assert_allclose(np.linalg.norm(np.vstack([a, texts]), axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(texts[0], texts[2])
    assert not np.allclose(texts[0], texts[1])


def test_registry_routes_by_prefix() -> None:
    encoder = create_encoder("fake:8")
    assert encoder.dim == 8
    assert encoder.identity.spec == "fake:8"
    with pytest.raises(UnknownModelError, match="dimension"):
        create_encoder("fake:eight")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("hf-hub:org/name", "hf-hub:org/name"),
        ("ViT-B-32:laion2b_s34b_b79k", "ViT-B-32:laion2b_s34b_b79k"),
        ("open_clip:ViT-B-32:openai", "ViT-B-32:openai"),
        ("fake:12", "fake:12"),
    ],
)
def test_canonical_names(spec: str, expected: str) -> None:
    assert canonical_model_name(spec) == expected


def test_open_clip_spec_parsing(tmp_path) -> None:
    assert OpenClipSpec.parse("hf-hub:a/b") == OpenClipSpec("hf-hub:a/b", None)
    assert OpenClipSpec.parse("ViT-B-32:openai") == OpenClipSpec("ViT-B-32", "openai")
    checkpoint = tmp_path / "weights.pt"
    assert OpenClipSpec.parse(f"ViT-B-32:{checkpoint}") == OpenClipSpec("ViT-B-32", str(checkpoint))
    assert OpenClipSpec.parse(str(tmp_path)) == OpenClipSpec(f"local-dir:{tmp_path}", None)
    with pytest.raises(UnknownModelError, match="names no weights"):
        OpenClipSpec.parse("ViT-B-32")
    with pytest.raises(UnknownModelError, match="empty model name"):
        OpenClipSpec.parse("hf-hub:")
