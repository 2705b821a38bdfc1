"""The search path's driver-level reads: placeholder expansion and agreement with SQLAlchemy."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import bindparam, create_engine, text

from mmsearch.store.reads import DriverReads
from mmsearch.store.reads import render as _render


def test_list_parameters_expand_and_scalars_stay() -> None:
    assert _render("a = ? AND b IN (?)", (-1, 3), False) == "a = ? AND b IN (?, ?, ?)"
    assert _render("b IN (?) AND a = ?", (2, -1), True) == "b IN (%s, %s) AND a = %s"


def test_an_empty_list_matches_nothing() -> None:
    assert _render("b IN (?)", (0,), False) == "b IN (NULL)"


def test_placeholder_count_must_match() -> None:
    with pytest.raises(ValueError, match="2 placeholders for 1"):
        _render("a = ? AND b = ?", (-1,), False)


@pytest.fixture(scope="module")
def numbers():
    engine = create_engine("sqlite://")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, label TEXT, blob BLOB)"))
        connection.execute(
            text("INSERT INTO t VALUES (:id, :label, :blob)"),
            [{"id": i, "label": f"n{i % 7}", "blob": bytes([i % 256]) * 3} for i in range(1, 200)],
        )
    return engine


@given(ids=st.lists(st.integers(-5, 220), max_size=40), label=st.sampled_from(["n0", "n3", "x"]))
def test_rows_match_sqlalchemy(numbers, ids: list[int], label: str) -> None:
    sql = "SELECT id, label, blob FROM t WHERE label != {label} AND id IN {ids} ORDER BY id"
    got = DriverReads(numbers).rows(sql.format(label="?", ids="(?)"), [label, ids])
    statement = text(sql.format(label=":label", ids=":ids")).bindparams(bindparam("ids", expanding=True))
    with numbers.connect() as connection:
        want = connection.execute(statement, {"label": label, "ids": ids}).all()
    assert got == [tuple(row) for row in want]
