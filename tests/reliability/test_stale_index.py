"""A query on a home whose index file is stale (stamped with a generation older than the database: a writer killed
before its save) or mis-stamped (written for another model) never serves the file as current: the index is rebuilt
from the database, the answer holds every stored vector, and the log says so."""

from __future__ import annotations

import json
from pathlib import Path

from mmsearch.index.faiss_index import read_header
from tests.reliability.race_tools import (
    assert_index_equals_database,
    finish,
    integrity,
    mmsearch_process,
    two_ingests,
)


def query_paths(home: Path, *flags: str) -> tuple[set[str], str]:
    code, out, err = finish(mmsearch_process(home, *flags, "query", "--no-service", "a picture", "-k", "100", "--json"))
    assert code == 0, err
    return {hit["path"] for hit in json.loads(out)["hits"]}, err


def test_a_stale_index_is_rebuilt_for_the_query_and_it_says_so(tmp_path: Path) -> None:
    home, path, first = two_ingests(tmp_path)
    path.write_bytes(first)  # as if the second writer was killed before it saved
    assert integrity(home).collections["image"].claims_current is False
    found, err = query_paths(home, "-v")
    assert len(found) == 30  # every stored image, not the 20 of the stale file
    assert "the image index is stamped generation" in err and "rebuilding it from the database" in err
    assert_index_equals_database(integrity(home))  # and the rebuilt file was saved


def test_an_index_written_for_another_model_is_not_used_and_it_says_so(tmp_path: Path) -> None:
    home, path, _ = two_ingests(tmp_path)
    fingerprint = read_header(path)["fingerprint"]
    path.write_bytes(path.read_bytes().replace(fingerprint.encode(), b"0" * len(fingerprint)))  # stamped current
    assert read_header(path)["fingerprint"] == "0" * len(fingerprint)
    found, err = query_paths(home)  # no -v: a warning
    assert len(found) == 30
    assert "was written for another model" in err and "rebuilding it from the database" in err
    assert read_header(path)["fingerprint"] == fingerprint


def test_an_unreadable_index_file_is_rebuilt_and_it_says_so(tmp_path: Path) -> None:
    home, path, _ = two_ingests(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    found, err = query_paths(home)
    assert len(found) == 30
    assert "is unreadable" in err
    assert_index_equals_database(integrity(home))
