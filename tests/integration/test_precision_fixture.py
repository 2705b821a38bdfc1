"""bf16 on the CPU with the fixture model: agreement with fp32 on the DEV photos, the fallback, the identity.

Skipped, with the reason, where open_clip or ../shared is missing; the agreement test also where the CPU has no
native bf16 (emulated bf16 is correct but slow).
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

from tests.conftest import DEV, FIXTURE_MODEL, require_fixture_model

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fp32_encoder():
    require_fixture_model()
    from mmsearch.encoders import create_encoder

    return create_encoder(FIXTURE_MODEL, "cpu", "fp32")


@pytest.fixture(scope="module")
def dev_images():
    require_fixture_model()
    from mmsearch.imageio import load_image

    return [load_image(str(path), 10**8) for path in sorted((DEV / "images").iterdir())]


def dev_captions(count: int) -> list[str]:
    with (DEV / "captions.tsv").open(encoding="utf-8") as handle:
        return [row["caption"] for _, row in zip(range(count), csv.DictReader(handle, delimiter="\t"), strict=False)]


def test_bf16_agrees_with_fp32_on_the_dev_photos_and_captions(fp32_encoder, dev_images) -> None:
    from mmsearch.encoders import create_encoder
    from mmsearch.encoders.precision import MIN_MEAN_COSINE, MIN_WORST_COSINE, agreement, cpu_bf16_support

    supported, why = cpu_bf16_support()
    if not supported:
        pytest.skip(f"no native bf16 here: {why}")
    encoder = create_encoder(FIXTURE_MODEL, "cpu", "auto")
    assert encoder.identity == fp32_encoder.identity  # precision never changes what the vectors are
    assert encoder.identity.fingerprint == fp32_encoder.identity.fingerprint
    images = agreement(fp32_encoder.encode_images(dev_images), encoder.encode_images(dev_images))
    captions = dev_captions(300)
    texts = agreement(fp32_encoder.encode_texts(captions), encoder.encode_texts(captions))
    assert encoder.precision["image"]["dtype"] == encoder.precision["text"]["dtype"] == "bf16"
    # Measured: images worst 0.9947 / mean 0.9992 (300 photos), captions worst >= 0.9999.
    assert images.worst_cosine >= MIN_WORST_COSINE and images.mean_cosine >= MIN_MEAN_COSINE
    assert texts.worst_cosine >= 0.9995 and texts.mean_cosine >= 0.9999


def test_the_fallback_restores_exact_fp32_weights_and_says_why(fp32_encoder, dev_images, monkeypatch) -> None:
    from mmsearch.encoders import create_encoder, precision

    monkeypatch.setattr(precision, "MIN_WORST_COSINE", 1.01)  # no bf16 tower can pass this
    monkeypatch.setattr("mmsearch.encoders.openclip.cpu_bf16_support", lambda **_: (True, "pretend"))
    encoder = create_encoder(FIXTURE_MODEL, "cpu", "auto")
    texts = dev_captions(20)
    np.testing.assert_array_equal(encoder.encode_images(dev_images[:8]), fp32_encoder.encode_images(dev_images[:8]))
    np.testing.assert_array_equal(encoder.encode_texts(texts), fp32_encoder.encode_texts(texts))
    for tower in ("image", "text"):
        entry = encoder.precision[tower]
        assert entry["dtype"] == "fp32" and "fails" in entry["reason"] and entry["worst_cosine"] < 1.01


def test_no_cpu_support_means_fp32_and_bf16_can_be_forced(fp32_encoder, dev_images, monkeypatch) -> None:
    from mmsearch.encoders import create_encoder

    monkeypatch.setattr("mmsearch.encoders.openclip.cpu_bf16_support", lambda **_: (False, "no bf16 here"))
    auto = create_encoder(FIXTURE_MODEL, "cpu", "auto")
    auto.encode_texts(["a dog"])
    assert auto.precision == {"text": {"dtype": "fp32", "reason": "auto: no bf16 here"}}
    forced = create_encoder(FIXTURE_MODEL, "cpu", "bf16")
    vectors = forced.encode_images(dev_images[:4])
    assert forced.precision["image"]["dtype"] == "bf16"
    assert agreement_worst(vectors, fp32_encoder.encode_images(dev_images[:4])) >= 0.99
    assert fp32_encoder.precision["image"] == {"dtype": "fp32", "reason": "fp32 asked for"}


def agreement_worst(a: np.ndarray, b: np.ndarray) -> float:
    from mmsearch.encoders.precision import agreement

    return agreement(a, b).worst_cosine


def test_reduced_size_decoding_leaves_the_vectors_alone(fp32_encoder, tmp_path) -> None:
    """DEV photos enlarged 2.5x (camera-sized JPEGs): decoded at half scale, the vectors hardly move."""
    from PIL import Image

    from mmsearch.imageio import load_image

    paths = sorted((DEV / "images").iterdir())[:24]
    data = []
    for path in paths:
        with Image.open(path) as image:
            large = image.convert("RGB").resize((image.width * 5 // 2, image.height * 5 // 2), Image.Resampling.LANCZOS)
        target = tmp_path / path.name
        large.save(target, quality=92)
        data.append(target.read_bytes())
    size = fp32_encoder.min_decode_size
    drafted = [load_image(blob, 10**8, size) for blob in data]
    assert all(min(image.size) >= size[0] for image in drafted)
    assert sum(max(image.size) <= 625 for image in drafted) >= 12  # most decoded at half scale (16 of 24)
    full = fp32_encoder.encode_images([load_image(blob, 10**8) for blob in data])
    cosines = (full * fp32_encoder.encode_images(drafted)).sum(1)
    assert cosines.min() >= 0.99 and cosines.mean() >= 0.998  # the bar bf16 is held to
