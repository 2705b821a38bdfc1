"""``mmsearch query --from-file``: many text queries, one JSON line each (or their paths)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from mmsearch.engine import Engine


def query_lines(engine: Engine, stream: Any, k: int, search: dict[str, Any], paths: bool, nul: bool) -> bool:
    """``query --from-file``: every valid line answered (one JSON line each, in file order), every bad line
    reported with its number (a JSON line with ``error``, and on stderr); True when any line was bad."""
    from mmsearch.cli.output import emit_json, print_paths
    from mmsearch.search.batch import read_query_lines
    from mmsearch.search.hits import Asked, Hits

    lines = read_query_lines(stream, name="--from-file")
    results = engine.search_many([text for _, text in lines.texts], k=k, **search) if lines.texts else []
    answers: dict[int, Any] = {number: hits for (number, _), hits in zip(lines.texts, results, strict=True)}
    answers.update(dict(lines.errors))
    asked = Asked(kind=search["kind"], mode=search["mode"], k=k)
    for number in sorted(answers):
        answer = answers[number]
        if isinstance(answer, str):
            click.echo(f"line {number}: {answer}", err=True)
            if not paths:
                emit_json(Hits(asked=asked).to_dict(line=number, error=answer))
        elif paths:
            print_paths(answer, nul=nul)
        else:
            emit_json(answer.to_dict(line=number))
    return bool(lines.errors)
