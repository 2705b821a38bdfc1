"""Shared fixtures. The Hugging Face variables are set before anything imports huggingface_hub."""

from __future__ import annotations

import os
from pathlib import Path

SHARED = Path(os.environ.get("MMSEARCH_SHARED") or Path(__file__).resolve().parents[2] / "shared").resolve()
FIXTURE_HF_HOME = SHARED / "models" / "hf"
if FIXTURE_HF_HOME.is_dir():
    os.environ.setdefault("HF_HOME", str(FIXTURE_HF_HOME))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Tests never read the developer's own settings.
for _var in (
    "MMSEARCH_HOME",
    "MMSEARCH_MODEL",
    "MMSEARCH_DEVICE",
    "MMSEARCH_PRECISION",
    "MMSEARCH_DB_URL",
    "MMSEARCH_HNSW_THRESHOLD",
):
    os.environ.pop(_var, None)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402


@pytest.fixture(autouse=True)
def _no_user_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read the developer's own config file (the platform's config folder; XDG on Linux)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.getbasetemp() / "xdg-config"))


FIXTURE_MODEL = "hf-hub:mmsearch-fixtures/lit-effnet-minilm"
DEV = SHARED / "data" / "flickr8k" / "dev"


def make_image(path: Path, seed: int, size: tuple[int, int] = (64, 48), fmt: str | None = None) -> Path:
    """Write a small deterministic picture: a colour gradient plus noise, distinct per seed."""
    rng = np.random.default_rng(seed)
    width, height = size
    base = rng.integers(0, 256, size=3)
    ramp = np.linspace(0, 1, width)[None, :, None] * rng.integers(-128, 128, size=3)
    noise = rng.integers(-20, 20, size=(height, width, 3))
    pixels = np.clip(base + ramp + noise, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)
    return path


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    """A folder of 6 small synthetic images of several formats, one in a subfolder."""
    folder = tmp_path / "photos"
    for seed, name in enumerate(["a.jpg", "b.png", "c.webp", "d.bmp", "e.tiff", "sub/f.gif"]):
        make_image(folder / name, seed)
    (folder / "notes.txt").write_text("not an image, not a candidate")
    return folder


@pytest.fixture
def engine(tmp_path: Path):
    """An Engine on in-memory SQLite with the deterministic fake encoder."""
    from mmsearch import Engine

    with Engine.open(tmp_path / "home", model="fake:16", db_url="sqlite://", workers=2, batch_size=4) as eng:
        yield eng


def require_fixture_model() -> None:
    """Skip (with the reason) when open_clip or the shared fixture model is missing."""
    pytest.importorskip("open_clip", reason="open_clip not installed (pip install 'mmsearch[clip]')")
    if not (FIXTURE_HF_HOME / "hub" / "models--mmsearch-fixtures--lit-effnet-minilm").is_dir():
        pytest.skip(f"fixture model not found under {FIXTURE_HF_HOME}")
    if not (DEV / "images").is_dir():
        pytest.skip(f"DEV images not found under {DEV}")
