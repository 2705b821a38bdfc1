"""Query arithmetic: parsing, errors with columns, combining term vectors."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmsearch.errors import MmsearchError
from mmsearch.search.querylang import QuerySyntaxError, Term, combine, is_plain, parse_query

FAST = settings(max_examples=60, deadline=None)


def text(weight: float, body: str) -> Term:
    return Term(weight, text=body)


def image(weight: float, path: str) -> Term:
    return Term(weight, image=path)


@pytest.mark.parametrize(
    ("query", "terms"),
    [
        ("a dog on the beach", [text(1, "a dog on the beach")]),
        ("  a dog  ", [text(1, "a dog")]),
        ('"beach" + "sunset" - "people"', [text(1, "beach"), text(1, "sunset"), text(-1, "people")]),
        ('2:"dog" + 0.5:cat', [text(2, "dog"), text(0.5, "cat")]),
        ('image:x.jpg + "in winter"', [image(1, "x.jpg"), text(1, "in winter")]),
        ('image:"path with spaces.jpg" - 2:image:y.png', [image(1, "path with spaces.jpg"), image(-2, "y.png")]),
        ("black-and-white photo", [text(1, "black-and-white photo")]),
        ("a well-known dog", [text(1, "a well-known dog")]),
        ("c++ code", [text(1, "c++ code")]),
        ("a dog's toy", [text(1, "a dog's toy")]),
        ('a "quoted" word inside', [text(1, 'a "quoted" word inside')]),
        ("10:30 meeting", [text(1, "10:30 meeting")]),
        ("2:", [text(1, "2:")]),
        ("image: a picture", [text(1, "image: a picture")]),
        ("beach + sunset - people", [text(1, "beach"), text(1, "sunset"), text(-1, "people")]),
        ("red car - blue sky + 3:night", [text(1, "red car"), text(-1, "blue sky"), text(3, "night")]),
        ("sea-side cafe - well-lit room", [text(1, "sea-side cafe"), text(-1, "well-lit room")]),
        ("cat -dog", [text(1, "cat -dog")]),  # '-' glued to a word is text
        ('cat -"dog"', [text(1, "cat"), text(-1, "dog")]),  # ... but before a quote it is an operator
        ('"a"+"b"-\'c d\'', [text(1, "a"), text(1, "b"), text(-1, "c d")]),
        ("-dog", [text(-1, "dog")]),
        ("- dog", [text(-1, "dog")]),
        ("+ dog", [text(1, "dog")]),
        ('-0.5:"dog" + .25:cat', [text(-0.5, "dog"), text(0.25, "cat")]),
        ("'single quoted' + \"it's\"", [text(1, "single quoted"), text(1, "it's")]),
        ('"  padded  "', [text(1, "padded")]),
        ("0:dog + cat", [text(0, "dog"), text(1, "cat")]),
        ("a\t-\tb", [text(1, "a"), text(-1, "b")]),
    ],
)
def test_parse_query(query: str, terms: list[Term]) -> None:
    assert parse_query(query) == terms


@pytest.mark.parametrize(
    ("query", "message", "column"),
    [
        ('"a dog', 'unterminated " quote starting', 1),
        ("'80s car", "unterminated ' quote starting", 1),
        ('"beach" + "sunset', 'unterminated " quote starting', 11),
        ('image:"x.jpg', 'unterminated " quote starting', 7),
        ("", "empty query", 1),
        ("   ", "empty query", 1),
        ('""', "empty quoted term", 1),
        ('"beach" + "  "', "empty quoted term", 11),
        ("beach +", "missing term after '+'", 7),
        ('"beach" -  ', "missing term after '-'", 9),
        ("-", "missing term after '-'", 1),
        ("beach + + sunset", "two operators in a row", 9),
        ("--dog", "two operators in a row", 2),
        ('"beach" sunset', "expected + or - after a quoted term", 9),
        ('2:"dog" "cat"', "expected + or - after a quoted term", 9),
    ],
)
def test_syntax_errors_point_at_the_column(query: str, message: str, column: int) -> None:
    with pytest.raises(QuerySyntaxError, match=re.escape(f"{message} at column {column}") + "$") as caught:
        parse_query(query)
    assert caught.value.column == column
    assert caught.value.exit_code == 2
    assert isinstance(caught.value, MmsearchError)


def test_is_plain() -> None:
    assert is_plain(parse_query("a dog"))
    assert is_plain(parse_query('"a dog"'))
    assert not is_plain(parse_query("2:dog"))
    assert not is_plain(parse_query("-dog"))
    assert not is_plain(parse_query("image:x.jpg"))
    assert not is_plain(parse_query("a + b"))
    assert not is_plain([])


words = st.text(alphabet="abcdefghij'-", min_size=1, max_size=8).filter(lambda w: w[0] not in "'-")
bodies = st.lists(words, min_size=1, max_size=4).map(" ".join)
weights = st.sampled_from([1.0, 2.0, 0.5, 0.25, 3.0])


@st.composite
def queries(draw: st.DrawFn) -> tuple[str, list[Term]]:
    """A random query string and the terms it must parse to."""
    parts, terms = [], []
    for i in range(draw(st.integers(1, 4))):
        negative = draw(st.booleans())
        weight = draw(weights)
        body = draw(bodies)
        is_image = draw(st.booleans())
        style = draw(st.sampled_from(["double", "single", "bare"]))
        if style == "single" and "'" in body:
            style = "double"
        quoted = {"double": f'"{body}"', "single": f"'{body}'", "bare": body}[style]
        prefix = ("" if weight == 1.0 and draw(st.booleans()) else f"{weight:g}:") + ("image:" if is_image else "")
        operator = "-" if negative else ("+" if i else draw(st.sampled_from(["", "+"])))
        space = draw(st.sampled_from([" ", "  ", "\t"]))
        parts.append(f"{operator}{space if operator else ''}{prefix}{quoted}")
        terms.append(Term(-weight if negative else weight, **{"image" if is_image else "text": body}))
    return " ".join(parts), terms


@FAST
@given(queries())
def test_parse_query_round_trips(case: tuple[str, list[Term]]) -> None:
    query, terms = case
    assert parse_query(query) == terms


@FAST
@given(bodies)
def test_text_with_inner_hyphens_and_apostrophes_is_one_plain_term(body: str) -> None:
    assert parse_query(body) == [Term(1.0, text=body)]


@FAST
@given(st.text(alphabet=" ab+-\"':2.image", max_size=20))
def test_any_input_parses_or_fails_cleanly(query: str) -> None:
    try:
        terms = parse_query(query)
    except QuerySyntaxError as error:
        assert error.column is not None and 1 <= error.column <= len(query) + 1
        return
    assert terms
    for term in terms:
        assert (term.text is None) != (term.image is None)
        body = term.text if term.text is not None else term.image
        assert body and body == body.strip()


# ---------------------------------------------------------------- combine


def test_combine_adds_and_renormalises() -> None:
    x, y = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    np.testing.assert_allclose(combine([x], [1.0]), x)
    np.testing.assert_allclose(combine([x], [3.0]), x)
    np.testing.assert_allclose(combine([x, y], [1.0, 1.0]), [np.sqrt(0.5), np.sqrt(0.5)], rtol=1e-6)
    np.testing.assert_allclose(combine([x, y], [1.0, -1.0]), [np.sqrt(0.5), -np.sqrt(0.5)], rtol=1e-6)
    np.testing.assert_allclose(combine([x * 5, y], [1.0, 1.0]), [np.sqrt(0.5), np.sqrt(0.5)], rtol=1e-6)
    np.testing.assert_allclose(combine([x, y], [0.0, 2.0]), y)
    np.testing.assert_allclose(combine([x, y], [1e-300, 1e-301]), [1 / np.sqrt(1.01), 0.1 / np.sqrt(1.01)], rtol=1e-6)
    assert combine([x], [1.0]).dtype == np.float32


def test_combine_refuses_terms_that_cancel_out() -> None:
    x = np.array([0.6, 0.8], dtype=np.float32)
    for vectors, weights in [([x, x], [1.0, -1.0]), ([x], [0.0]), ([x, -x], [2.0, 2.0])]:
        with pytest.raises(QuerySyntaxError, match="the query terms cancel out"):
            combine(vectors, weights)
    with pytest.raises(QuerySyntaxError, match="no terms"):
        combine([], [])
    with pytest.raises(ValueError, match="2 vectors but 1 weights"):
        combine([x, x], [1.0])


vectors = st.lists(st.floats(-1, 1, allow_nan=False), min_size=4, max_size=4).map(np.asarray)


@FAST
@given(
    st.lists(st.tuples(vectors, st.floats(-3, 3).filter(lambda w: w == 0 or abs(w) > 1e-6)), min_size=1, max_size=4),
    st.floats(0.1, 10),
)
def test_combine_is_unit_length_and_ignores_a_common_weight_scale(pairs, scale: float) -> None:
    vs, ws = [v for v, _ in pairs], [w for _, w in pairs]
    try:
        out = combine(vs, ws)
    except QuerySyntaxError:
        return
    assert np.linalg.norm(out) == pytest.approx(1.0, abs=1e-5)
    total = sum(w * v / np.linalg.norm(v) for v, w in zip(vs, ws, strict=True) if np.linalg.norm(v) > 0)
    if np.linalg.norm(total) > 1e-3 * sum(abs(w) for w in ws):  # well away from cancelling
        np.testing.assert_allclose(combine(vs, [w * scale for w in ws]), out, atol=1e-5)
        np.testing.assert_allclose(out, total / np.linalg.norm(total), atol=1e-5)
