"""`mmsearch status`, `show`, `reindex` and `check`: the home's state, read or repaired."""

from __future__ import annotations

from pathlib import Path

import click

from mmsearch.cli.context import PARTIAL_FAILURE, open_engine, say_waiting


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show what is indexed: model, counts, index type and sizes."""
    from mmsearch.cli.output import emit_json, print_status

    with open_engine(ctx, create=False) as engine:
        report = engine.status()
    if as_json:
        emit_json(report.to_dict())
    else:
        print_status(report)


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the storyboard as JSON.")
@click.pass_context
def show(ctx: click.Context, path: Path, as_json: bool) -> None:
    """Show the storyboard of an indexed video: its shots, keyframe times and what is said in each."""
    from mmsearch.cli.output import emit_json, print_storyboard

    with open_engine(ctx, create=False) as engine:
        board = engine.describe(path)
    if as_json:
        emit_json(board.to_dict())
    else:
        print_storyboard(board)


@click.command()
@click.option("--wait/--no-wait", default=True, help="When an ingest is writing to this home: wait (default) or fail.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def reindex(ctx: click.Context, wait: bool, as_json: bool) -> None:
    """Rebuild the vector index from the vectors stored in the database."""
    from mmsearch.cli.output import emit_json

    with open_engine(ctx, create=False) as engine:
        result = engine.reindex(wait=wait, on_wait=say_waiting)
    if as_json:
        emit_json(result.to_dict())
    else:
        for collection, entry in result.indexes.items():
            click.echo(f"rebuilt {collection} index {entry.path}: {entry.vectors} vectors")
        click.echo(f"model {result.model}, {result.vectors} vectors in {result.elapsed_s:.2f} s")


@click.command()
@click.option(
    "--repair",
    is_flag=True,
    help="Fix what drifted (see docs/json.md#check); files that lost their vectors are re-embedded by the next ingest.",
)
@click.option("--wait/--no-wait", default=True, help="With --repair: wait while another writer holds the lock.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (docs/json.md).")
@click.pass_context
def check(ctx: click.Context, repair: bool, wait: bool, as_json: bool) -> None:
    """Check files ↔ vectors ↔ vector indexes ↔ keyword index; exit code 3 when something drifted."""
    from mmsearch.cli.output import emit_json, print_check

    with open_engine(ctx, create=False) as engine:
        report = engine.check(repair=repair, wait=wait, on_wait=say_waiting)
    if as_json:
        emit_json(report.to_dict())
    else:
        print_check(report)
    if report.needs_attention:
        ctx.exit(PARTIAL_FAILURE)
