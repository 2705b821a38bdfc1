"""Peak memory of hostile inputs, measured in a subprocess (its own ``ru_maxrss``), against stated bounds.

The bounds: a query by any image, the extreme ones included (30000x1 pixels took 7.2 GB on the fixture model
before the side-ratio limit) and the largest one the limits accept (94500x945, the pixel limit at the largest side
ratio), adds at most :data:`QUERY_BOUND_BYTES` to the process's peak once the model is loaded; with the fake
encoder, the whole process (ingest of the hostile corpus, then those queries) stays under :data:`BOUND_BYTES`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from mmsearch import reasons
from mmsearch.imageio import MAX_ASPECT, MAX_DECODED_BYTES
from tests.conftest import FIXTURE_MODEL, make_image, require_fixture_model
from tests.reliability.corpus import INDEXED, build_corpus

BOUND_BYTES = 1536 << 20
"""The whole process with the fake encoder: ingest of the hostile corpus and the extreme queries."""
QUERY_BOUND_BYTES = MAX_DECODED_BYTES
"""What one query by an image may add to the peak: the decoded-size limit (512 MiB)."""
REPO = Path(__file__).resolve().parents[2]

CHILD = """
import json, resource, sys
sys.path.insert(0, sys.argv[1])
from mmsearch import Engine
from mmsearch.errors import UnreadableMediaError

folder, home, model, warm_up, *images = sys.argv[2:]
with Engine.open(home, model=model, workers=2, batch_size=8, precision="fp32") as engine:
    report = engine.ingest(folder)
    engine.search(image=warm_up, k=3)  # the model and the index loaded, one small image through the tower
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    answers = []
    for image in images:
        try:
            answers.append(len(engine.search(image=image, k=3)))
        except UnreadableMediaError as exc:
            answers.append(exc.reason)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"peak_bytes": peak, "baseline_bytes": baseline, "added": report.added, "answers": answers}))
"""


def measure(folder: Path, home: Path, model: str, *images: Path) -> dict:
    """Ingest ``folder``, query by the first image (warm-up: the baseline), then by each other image, in a fresh
    Python process; its peak RSS before and after those queries, and what each query got."""
    args = [sys.executable, "-c", CHILD, str(REPO), str(folder), str(home), model, *map(str, images)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def largest_accepted(path: Path) -> Path:
    """The biggest image the limits let through: the default pixel limit at the largest side ratio."""
    height = 945
    Image.new("RGB", (MAX_ASPECT * height, height), "white").save(path)
    return path


def test_hostile_corpus_and_extreme_queries_stay_under_the_bound_fake_encoder(tmp_path: Path) -> None:
    lib, cases = build_corpus(tmp_path)
    largest = largest_accepted(tmp_path / "largest.png")
    result = measure(lib, tmp_path / "home", "fake:16", lib / "ok.jpg", lib / "wide.png", lib / "bomb.png", largest)
    assert result["answers"] == [reasons.EXTREME_ASPECT, reasons.TOO_MANY_PIXELS, 3]
    assert result["added"] == sum(case.outcome == INDEXED for case in cases)
    check_bounds(result, BOUND_BYTES)


def check_bounds(result: dict, bound: int | None) -> None:
    peak, baseline = result["peak_bytes"], result["baseline_bytes"]
    print(f"peak RSS {peak >> 20} MiB, {baseline >> 20} MiB before the extreme queries")  # shown with -s
    assert peak - baseline < QUERY_BOUND_BYTES, f"queries added {(peak - baseline) >> 20} MiB"
    if bound is not None:
        assert peak < bound, f"peak {peak >> 20} MiB"


@pytest.mark.integration
def test_extreme_image_query_stays_under_the_bound_fixture_model(tmp_path: Path) -> None:
    require_fixture_model()
    folder = tmp_path / "photos"
    for seed in range(3):
        make_image(folder / f"{seed}.jpg", seed)
    wide = tmp_path / "wide.png"
    Image.new("RGB", (30_000, 1), "red").save(wide)
    largest = largest_accepted(tmp_path / "largest.png")
    result = measure(folder, tmp_path / "home", FIXTURE_MODEL, folder / "0.jpg", wide, largest)
    assert result["answers"] == [reasons.EXTREME_ASPECT, 3]
    check_bounds(result, None)  # the fixture model and torch alone take about 1.1 GB
