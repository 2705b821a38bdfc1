"""A query, built once: its terms parsed, its keywords derived, whether it is images alone; its vector later.

:meth:`Query.parse` runs the query language once; the engine encodes the terms (:meth:`Query.encoded`)
and the searcher reads the result. Nothing parses the text again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from mmsearch.search.options import OptionError
from mmsearch.search.querylang import QuerySyntaxError, Term, is_plain, parse_query


def _check_utf8(text: str | None) -> None:
    """Text that cannot be UTF-8 (undecodable bytes of a command line, kept as lone surrogates) is refused."""
    if text is not None:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise QuerySyntaxError(f"the query text is not valid UTF-8: {text!r}") from None


@dataclass(frozen=True)
class Query:
    """A parsed query: its weighted terms, the words for keyword search, and whether it has no text term."""

    terms: tuple[Term, ...]
    keywords: str | None
    image_only: bool
    text: str | None = None
    """The query text as given (with its ``image:`` paths), for the results to echo."""
    image: str | None = None
    """The query image as given."""

    @classmethod
    def parse(cls, text: str | None = None, image: str | os.PathLike[str] | None = None) -> Query:
        """The parsed text (query arithmetic), with the query image as its first term; at least one is needed."""
        if text is None and image is None:
            raise OptionError("give a text, an image, or both")
        if text is not None and not isinstance(text, str):
            raise OptionError(f"the query text must be text, not {text!r}")
        if image is not None and not isinstance(image, (str, os.PathLike)):
            raise OptionError(f"the query image must be a path, not {image!r}")
        terms = parse_query(text) if text is not None else []
        for term in terms:
            _check_utf8(term.text)
        if image is not None:
            terms.insert(0, Term(1.0, image=os.fspath(image)))
        keywords = " ".join(term.text for term in terms if term.text is not None and term.weight > 0) or None
        picture = os.fspath(image) if image is not None else None
        return cls(tuple(terms), keywords, all(term.text is None for term in terms), text, picture)

    @property
    def texts(self) -> list[str]:
        """The text of every text term, in order."""
        return [term.text for term in self.terms if term.text is not None]

    @property
    def plain_text(self) -> str | None:
        """The text of an ordinary text search (one text term of weight 1), else None."""
        return self.terms[0].text if is_plain(self.terms) else None

    def encoded(self, vector: np.ndarray) -> QuerySpec:
        """This query with its (combined, unit) vector: what the searcher searches with."""
        return QuerySpec(np.asarray(vector, dtype=np.float32), self.keywords, self.image_only)


@dataclass(frozen=True)
class QuerySpec:
    """A query as the searcher sees it: a unit vector for dense retrieval, words for keyword retrieval."""

    vector: np.ndarray
    keywords: str | None = None
    image_only: bool = False
    """Built from images alone (no text term): image evidence answers it, see
    :func:`mmsearch.search.hybrid.dense_retrievers`."""
