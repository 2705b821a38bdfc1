"""The ingest commit thread's database writes alone: ``write_assets`` of batches of 30 new photos (256-d vectors),
without captions and with 5 captions each, into a fresh SQLite file; CPU per batch (best of ``--rounds``) and the
statements one batch runs. For an A/B, run it with ``PYTHONPATH`` pointing at another checkout's copy::

    python bench/commit_writes.py                                   # this checkout
    PYTHONPATH=/tmp/main-copy python bench/commit_writes.py         # e.g. git -C .. archive main | tar x -C ...

About 10 s.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from sqlalchemy import event

import mmsearch
from mmsearch.encoders.base import ModelIdentity
from mmsearch.store.database import connect, upgrade_to_head
from mmsearch.store.records import FileRecord
from mmsearch.store.repository import MetadataStore
from mmsearch.store.text_items import TextRecord

IDENTITY = ModelIdentity("fake", "256", 256, {"thumbnail": 8})
PHOTOS = 30


def batch(number: int, captions: int, rng: np.random.Generator) -> tuple[list, dict, dict]:
    """One batch as the commit thread writes it: files, their new vectors, their text groups."""
    files = [FileRecord(f"/photos/{number}-{i}.jpg", "image", i, i, f"h{number}-{i}", 500, 375) for i in range(PHOTOS)]
    vectors, texts = {}, {}
    for file in files:
        records = [
            TextRecord(
                "caption",
                "manifest:m",
                "manifest",
                None,
                k,
                f"caption {k} of {file.path}",
                None,
                None,
                f"t{file.path}{k}",
            )
            for k in range(captions)
        ]
        texts[file.path] = {"sidecar": [], "embedded": [], "manifest:m": records}
        for key in [file.content_hash, *(record.content_hash for record in records)]:
            vector = rng.standard_normal(256).astype(np.float32)
            vectors[key] = vector / np.linalg.norm(vector)
    return files, vectors, texts


def run(captions: int, batches: int) -> tuple[float, Counter]:
    """CPU ms per batch, and the statements of the first batch by their first words."""
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        engine = connect(f"sqlite:///{Path(folder) / 'bench.db'}")
        upgrade_to_head(engine)
        store = MetadataStore(engine)
        model_id = store.adopt_model(IDENTITY)
        seen: Counter = Counter()

        def count(conn, cursor, statement, parameters, context, executemany) -> None:
            seen[" ".join(statement.split()[:3])] += 1

        spent = 0.0
        for number in range(batches):
            files, vectors, texts = batch(number, captions, rng)
            if number == 0:
                event.listen(engine, "before_cursor_execute", count)
            started = time.process_time()
            store.write_assets(model_id, files, vectors, texts)
            spent += time.process_time() - started
            if number == 0:
                event.remove(engine, "before_cursor_execute", count)
        engine.dispose()
    return spent / batches * 1000, seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    print(f"mmsearch: {Path(mmsearch.__file__).parent}")
    for captions in (0, 5):
        results = [run(captions, args.batches) for _ in range(args.rounds)]
        best = min(ms for ms, _ in results)
        statements = results[0][1]
        print(
            f"{PHOTOS} new photos x {captions} captions: {best:.2f} ms CPU per batch (best of {args.rounds}), "
            f"{sum(statements.values())} statements: {dict(statements.most_common(4))}"
        )


if __name__ == "__main__":
    main()
