"""A "mixed library" built from the Flickr8k DEV split at run time, for hybrid-search evaluation.

All 300 DEV photos (as symbolic links: the data stays in ../shared), a sidecar caption (caption 0) next to
every other photo, and the spoken caption (an MP3 of caption 0) of every third photo as an audio file. The
queries are caption 1 of each photo, a paraphrase that is never stored; the photo and its recording (when
linked) are the relevant answers.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

from mmsearch.evaluation import EvalQuery


def read_captions(dev: Path) -> dict[str, list[str]]:
    by_image: dict[str, list[str]] = defaultdict(list)
    with (dev / "captions.tsv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            by_image[row["image"]].append(row["caption"].strip())
    return by_image


def build_mixed_library(dev: Path, folder: Path, audio_every: int = 3, query_caption: int = 1) -> list[EvalQuery]:
    """Fill ``folder`` (images/, audio/) and return the labelled queries."""
    captions = read_captions(dev)
    with (dev / "audio.tsv").open(encoding="utf-8") as handle:
        spoken = {row["image"]: row["file"] for row in csv.DictReader(handle, delimiter="\t")}
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    queries = []
    for number, image in enumerate(sorted((dev / "images").glob("*.jpg"))):
        (folder / "images" / image.name).symlink_to(image)
        if number % 2 == 0:
            (folder / "images" / f"{image.stem}.txt").write_text(captions[image.name][0] + "\n", encoding="utf-8")
        relevant = [image.name]
        if number % audio_every == 1 and image.name in spoken:
            audio = dev / spoken[image.name]
            (folder / "audio" / audio.name).symlink_to(audio)
            relevant.append(audio.name)
        queries.append(EvalQuery(captions[image.name][query_caption], tuple(relevant)))
    return queries


def write_queries(queries: list[EvalQuery], path: Path) -> Path:
    """Write queries in the ``mmsearch eval`` format."""
    lines = ["query\trelevant"] + ["\t".join((q.text, *q.relevant)) for q in queries]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
