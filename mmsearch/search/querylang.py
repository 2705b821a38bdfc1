"""Query arithmetic, rclip style: ``"beach" + "sunset" - "people"``, ``2:"dog" + 0.5:cat``, ``image:x.jpg + snow``.

Grammar (columns in messages are 1-based)::

    query   := [sign] term (op term)*
    op      := "+" | "-"     an operator only at the very start, right after a quoted term, or with
                             whitespace before it and whitespace (or a quote) after it; elsewhere
                             (``black-and-white``, ``a well-known dog``, ``c++ code``) it is just text
    term    := [weight ":"] ["image:"] body
    weight  := digits ["." digits] | "." digits      only when followed by a quote or a non-digit word
                                                     (so ``10:30 meeting`` is text)
    body    := '"' chars '"' | "'" chars "'" | bare text up to the next operator (trimmed)

A quote opens a quoted term only at the start of a term, so ``a dog's toy`` is plain text; quoted strings
have no escapes (use the other quote kind). ``image:`` needs a path right after the colon. A leading ``-``
negates the first term; a term's weight is its sign times its weight prefix (default 1). A term may not
start with ``+`` or ``-`` (two operators in a row): quote it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmsearch.errors import MmsearchError

_WEIGHT = re.compile(r"([0-9]+(?:\.[0-9]+)?|\.[0-9]+):(?=[^\s\d.:+-])")
_IMAGE = "image:"
_QUOTES = "\"'"
_CANCEL_TOLERANCE = 1e-6


class QuerySyntaxError(MmsearchError):
    """A query cannot be parsed (or its terms cancel out); ``column`` is 1-based when known."""

    exit_code = 2

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message if column is None else f"{message} at column {column}")
        self.column = column


@dataclass(frozen=True)
class Term:
    """One weighted part of a query: a text or an image path (exactly one of them is set)."""

    weight: float
    text: str | None = None
    image: str | None = None


def parse_query(query: str) -> list[Term]:
    """Split a query into weighted text and image terms (see the module docstring for the grammar).

    A query with no operators is one ``Term(1.0, text=...)`` holding the whole (trimmed) query.
    Raises :class:`QuerySyntaxError` for an empty query or term, an unterminated quote, or text after a
    quoted term that is not an operator.
    """
    return _Parser(query).parse()


def image_spans(query: str) -> list[tuple[int, int, str]]:
    """``(start, end, path)`` of each ``image:`` term's path in ``query`` (the span takes in its quotes)."""
    parser = _Parser(query)
    parser.parse()
    return parser.images


def is_plain(terms: Sequence[Term]) -> bool:
    """True for a single positive text term of weight 1: an ordinary text search."""
    return len(terms) == 1 and terms[0].text is not None and terms[0].image is None and terms[0].weight == 1.0


def combine(vectors: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The weighted sum of the (unit) term vectors, normalised to unit length, as float32.

    Each input is normalised first, so the weights alone set each term's share. Raises
    :class:`QuerySyntaxError` when the sum is (nearly) zero: the query terms cancel out.
    """
    if len(vectors) != len(weights):
        raise ValueError(f"{len(vectors)} vectors but {len(weights)} weights")
    if not vectors:
        raise QuerySyntaxError("the query has no terms")
    matrix = np.stack([np.asarray(v, dtype=np.float64).reshape(-1) for v in vectors])
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
    coefficients = np.asarray(weights, dtype=np.float64)
    if not (np.all(np.isfinite(coefficients)) and np.all(np.isfinite(matrix))):
        raise ValueError("query weights and vectors must be finite")
    largest = float(np.abs(coefficients).max())
    if largest > 0:
        coefficients = coefficients / largest  # the direction is all that counts; this keeps tiny weights exact
    total = coefficients @ matrix
    norm = float(np.linalg.norm(total))
    if largest == 0 or norm <= _CANCEL_TOLERANCE * float(np.abs(coefficients).sum()):
        raise QuerySyntaxError("the query terms cancel out")
    return (total / norm).astype(np.float32)


class _Parser:
    def __init__(self, query: str) -> None:
        self.text = query
        self.pos = 0
        self._operator_at = 0  # where the last operator was, for messages
        self.images: list[tuple[int, int, str]] = []  # each image term's path: start, end (quotes in), text

    def parse(self) -> list[Term]:
        self._skip_space()
        if self.pos == len(self.text):
            raise QuerySyntaxError("empty query", 1)
        sign = 1.0
        if self.text[self.pos] in "+-":
            sign = -1.0 if self.text[self.pos] == "-" else 1.0
            self._operator_at = self.pos
            self.pos += 1
            self._skip_space()
            self._require_term()
        terms: list[Term] = []
        while True:
            term, next_sign = self._term(sign)
            terms.append(term)
            if next_sign is None:
                return terms
            sign = next_sign

    def _term(self, sign: float) -> tuple[Term, float | None]:
        """Parse one term at ``pos``; return it and the sign of the next term (None at the end)."""
        weight = 1.0
        match = _WEIGHT.match(self.text, self.pos)
        if match:
            weight = float(match.group(1))
            self.pos = match.end()
        is_image = self.text.startswith(_IMAGE, self.pos) and self._char(self.pos + len(_IMAGE)).strip() != ""
        if is_image:
            self.pos += len(_IMAGE)
        body_start = self.pos
        if self.pos < len(self.text) and self.text[self.pos] in _QUOTES:
            body, next_sign = self._quoted(), self._after_quoted()
        else:
            body, next_sign = self._bare()
        if not body:  # defensive: the checks above leave no way to an empty body
            raise QuerySyntaxError("empty term", body_start + 1)
        if is_image:
            self.images.append(self._span(body_start, body))
        return Term(sign * weight, image=body) if is_image else Term(sign * weight, text=body), next_sign

    def _span(self, start: int, body: str) -> tuple[int, int, str]:
        """Where ``body`` (a bare body trimmed, or a quoted one with its quotes) is in the text."""
        if self.text[start] in _QUOTES:
            return start, self.text.index(self.text[start], start + 1) + 1, body
        begin = self.text.index(body, start)
        return begin, begin + len(body), body

    def _quoted(self) -> str:
        quote = self.text[self.pos]
        end = self.text.find(quote, self.pos + 1)
        if end < 0:
            raise QuerySyntaxError(f"unterminated {quote} quote starting", self.pos + 1)
        body = self.text[self.pos + 1 : end].strip()
        if not body:
            raise QuerySyntaxError("empty quoted term", self.pos + 1)
        self.pos = end + 1
        return body

    def _after_quoted(self) -> float | None:
        self._skip_space()
        if self.pos == len(self.text):
            return None
        char = self.text[self.pos]
        if char not in "+-":
            raise QuerySyntaxError("expected + or - after a quoted term", self.pos + 1)
        return self._take_operator()

    def _bare(self) -> tuple[str, float | None]:
        index = self.pos
        while index < len(self.text):
            if self._is_operator(index):
                body = self.text[self.pos : index].strip()
                self.pos = index
                if not body:
                    raise QuerySyntaxError(f"missing term before {self.text[index]!r}", index + 1)
                return body, self._take_operator()
            index += 1
        body = self.text[self.pos :].strip()
        self.pos = len(self.text)
        return body, None

    def _is_operator(self, index: int) -> bool:
        text = self.text
        return (
            text[index] in "+-"
            and (index == 0 or text[index - 1].isspace())
            and (index + 1 == len(text) or text[index + 1].isspace() or text[index + 1] in _QUOTES)
        )

    def _take_operator(self) -> float:
        self._operator_at = self.pos
        sign = -1.0 if self.text[self.pos] == "-" else 1.0
        self.pos += 1
        self._skip_space()
        self._require_term()
        return sign

    def _require_term(self) -> None:
        operator = self.text[self._operator_at]
        if self.pos == len(self.text):
            raise QuerySyntaxError(f"missing term after {operator!r}", self._operator_at + 1)
        if self.text[self.pos] in "+-":
            raise QuerySyntaxError("two operators in a row", self.pos + 1)

    def _skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def _char(self, index: int) -> str:
        return self.text[index] if index < len(self.text) else ""
