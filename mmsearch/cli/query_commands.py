"""`mmsearch query` and `mmsearch eval`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mmsearch.cli.context import PARTIAL_FAILURE, clean_errors, open_engine, open_searcher, settings_of
from mmsearch.cli.search_options import apply_search_defaults, engine_options, search_options
from mmsearch.kinds import DEFAULT_MODE, MODES


@click.command()
@click.argument("text", required=False)
@click.option("--text", "text_option", help="Text to mix with --image (same as TEXT).")
@click.option("--image", "image", type=click.Path(path_type=Path), help="Find what is similar to this image.")
@click.option(
    "--from-file",
    "from_file",
    type=click.File("rb"),
    help="One text query per line ('-' for stdin); prints one JSON line per query (a bad line: its error).",
)
@click.option(
    "-k", "--top", "k", type=click.IntRange(min=1), help="How many results. Default: 10, or `k` in config.toml."
)
@click.option(
    "--mode",
    type=click.Choice(MODES),
    help="Evidence to use: vectors and keywords fused (hybrid), vectors only (dense), keywords only. "
    f"Default: {DEFAULT_MODE}, or `mode` in config.toml.",
)
@search_options
@click.option("--explain", is_flag=True, help="Show each hit's evidence: every retriever's score and share.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON (docs/json.md).")
@click.option("--paths", is_flag=True, help="Print only the paths, one per line.")
@click.option("-0", "--print0", "print0", is_flag=True, help="Print only the paths, each ended by NUL (xargs -0).")
@click.option(
    "--no-service",
    "no_service",
    is_flag=True,
    help="Search in this process even when `mmsearch serve` runs for this home (it is used by default).",
)
@click.pass_context
def query(
    ctx: click.Context,
    text: str | None,
    text_option: str | None,
    image: Path | None,
    from_file: Any,
    k: int,
    as_json: bool,
    paths: bool,
    print0: bool,
    no_service: bool,
    **options: Any,
) -> None:
    """Search by TEXT (query arithmetic: '"beach" + "sunset" - "people"', '2:"dog"'), by --image, by both,
    or by many texts --from-file. Paths (--image, image: terms, --path) are taken from the current folder."""
    from mmsearch.search.paths import client_path, resolve_query_images

    text = _one_text(text, text_option)
    _check_combination(text, image, from_file, as_json, paths or print0)
    settings = settings_of(ctx)
    k = k or settings.k
    with clean_errors():
        apply_search_defaults(options, settings)
        search = engine_options(options)
        if from_file is not None:
            from mmsearch.cli.from_file import query_lines

            with open_engine(ctx, create=False) as engine:
                failed = query_lines(engine, from_file, k, search, paths or print0, print0)
            if failed:
                ctx.exit(PARTIAL_FAILURE)
            return
        picture = client_path(image) if image is not None else None
        text = resolve_query_images(text) if text is not None else None
    with open_searcher(ctx, service=not no_service, text=text if image is None else None) as searcher:
        hits = searcher.search(text, image=picture, k=k, **search)
    _print_hits(hits, image, text, as_json, paths, print0, explain=search.get("explain", False))


def _one_text(text: str | None, text_option: str | None) -> str | None:
    if text is not None and text_option is not None:
        raise click.UsageError("give the text once: as TEXT or as --text")
    return text if text is not None else text_option


def _check_combination(text: str | None, image: Path | None, from_file: Any, as_json: bool, paths: bool) -> None:
    """Usage errors of the query options taken together."""
    if from_file is not None and (text is not None or image is not None):
        raise click.UsageError("--from-file does not go with TEXT or --image")
    if from_file is None and text is None and image is None:
        raise click.UsageError("give TEXT, --image (or both), or --from-file")
    if as_json and paths:
        raise click.UsageError("--json and --paths/--print0 do not go together")


def _print_hits(
    hits: Any, image: Path | None, text: str | None, as_json: bool, paths: bool, print0: bool, explain: bool
) -> None:
    """The hits as JSON, paths (newline or NUL ended) or a table, and the search's note on stderr."""
    from mmsearch.cli.output import emit_json, print_hits, print_paths

    label = " + ".join(part for part in (f"image {image}" if image else "", repr(text) if text else "") if part)
    if as_json:
        emit_json(hits.to_dict())
    elif paths or print0:
        print_paths(hits, nul=print0)
    else:
        print_hits(hits, label, explain=explain)
    if hits.note and not as_json:
        click.echo(f"note: {hits.note}", err=True)


@click.command(name="eval")
@click.argument("queries", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--mode",
    "modes",
    type=click.Choice(MODES),
    multiple=True,
    help="Modes to compare (repeatable; default: all three).",
)
@click.option("-k", "--top", "k", type=click.IntRange(min=1), default=10, show_default=True, help="Hits per query.")
@search_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def evaluate(ctx: click.Context, queries: Path, modes: tuple[str, ...], k: int, as_json: bool, **options: Any) -> None:
    """Score search quality on QUERIES: a TSV of 'query<TAB>relevant path[<TAB>...]' lines (paths, file names or
    stems). Prints Recall@1/5/10, MRR, nDCG@10 and latency for every mode."""
    from mmsearch.cli.output import emit_json, print_eval_report

    with clean_errors():
        apply_search_defaults(options, settings_of(ctx))
        search = engine_options(options)
    with open_engine(ctx, create=False) as engine:
        report = engine.evaluate(queries, modes=modes or MODES, k=k, **search)
    if as_json:
        emit_json(report.to_dict())
    else:
        print_eval_report(report)
