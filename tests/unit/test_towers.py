"""Torch-side pieces of the open_clip encoder on a tiny random-weight model: tower casts and the split preprocessing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip", reason="open_clip not installed (pip install 'mmsearch[clip]')")

from mmsearch.encoders.imageprep import SplitPreprocess  # noqa: E402
from mmsearch.encoders.towers import (  # noqa: E402
    cast_tower,
    has_conv_layers,
    restore_tower,
    snapshot,
    tower_dtype,
    tower_tensors,
)

TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny OpenAI-style CLIP (text parameters at the model root, a ViT image tower) and its preprocessing."""
    path = tmp_path_factory.mktemp("tiny") / "mmsearch-tiny-towers.json"
    path.write_text(json.dumps(TINY))
    open_clip.add_model_config(path)
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("mmsearch-tiny-towers")
    return model.eval(), preprocess


def test_casting_one_tower_leaves_the_other_and_the_temperature_alone(tiny) -> None:
    model, _ = tiny
    saved = snapshot(model, "text")
    assert "positional_embedding" in saved and "text_projection" in saved and "logit_scale" not in saved
    assert not any(name.startswith("visual.") for name in saved)
    cast_tower(model, "text", torch.bfloat16)
    try:
        assert tower_dtype(model, "text") == torch.bfloat16
        assert all(t.dtype == torch.bfloat16 for t in tower_tensors(model, "text").values())
        assert all(t.dtype == torch.float32 for t in tower_tensors(model, "image").values())
        assert model.logit_scale.dtype == torch.float32
        with torch.inference_mode():
            out = model.encode_text(open_clip.get_tokenizer("mmsearch-tiny-towers")(["a dog"]))
        assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
    finally:
        restore_tower(model, "text", saved)
    assert all(torch.equal(tower_tensors(model, "text")[name], value) for name, value in saved.items())
    assert tower_dtype(model, "text") == torch.float32


def test_image_tower_cast_and_exact_restore(tiny) -> None:
    model, _ = tiny
    saved = snapshot(model, "image")
    cast_tower(model, "image", torch.bfloat16)
    assert tower_dtype(model, "image") == torch.bfloat16 and tower_dtype(model, "text") == torch.float32
    restore_tower(model, "image", saved)
    assert all(torch.equal(tower_tensors(model, "image")[name], value) for name, value in saved.items())


def test_channels_last_only_for_convolutional_towers(tiny) -> None:
    model, _ = tiny
    assert not has_conv_layers(model.visual)  # a ViT: one patch-embedding conv
    convnet = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3))
    assert has_conv_layers(convnet)


def test_split_preprocessing_gives_the_same_numbers(tiny) -> None:
    _, preprocess = tiny
    split = SplitPreprocess.of(preprocess)
    assert split is not None
    rng = np.random.default_rng(3)
    images = [
        Image.fromarray(rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)),
        Image.fromarray(rng.integers(0, 256, size=(70, 40, 3), dtype=np.uint8)),
        Image.fromarray(rng.integers(0, 256, size=(50, 50), dtype=np.uint8)).convert("L"),
    ]
    prepared = [split.prepare(image) for image in images]
    assert prepared[0].dtype == torch.uint8 and prepared[0].shape == (32, 32, 3)
    batch = split.batch(prepared)
    assert batch.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(batch, torch.stack([preprocess(image) for image in images]))


def test_unsplittable_preprocessing_is_left_whole() -> None:
    from torchvision import transforms

    assert SplitPreprocess.of(transforms.Compose([transforms.ToTensor()])) is None
    assert SplitPreprocess.of(transforms.Compose([transforms.Resize(8), transforms.ToTensor()])) is None
    assert SplitPreprocess.of(object()) is None
