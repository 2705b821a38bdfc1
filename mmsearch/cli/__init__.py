"""The ``mmsearch`` command: parse options, make one Engine call, format the result.

Heavy modules (the engine, SQLAlchemy, torch) are imported inside commands so
``mmsearch --help`` stays instant.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys

import click

from mmsearch.cli.admin_commands import check, reindex, show, status
from mmsearch.cli.context import PARTIAL_FAILURE, VERBOSITY
from mmsearch.cli.ingest_command import ingest
from mmsearch.cli.logs import configure_logging, log_level
from mmsearch.cli.query_commands import evaluate, query
from mmsearch.cli.serve_command import serve

__all__ = ["INTERNAL_ERROR", "PARTIAL_FAILURE", "cli", "main"]

INTERNAL_ERROR = 70
"""Exit code of an unexpected error (EX_SOFTWARE): a bug, shown in one line (``MMSEARCH_DEBUG=1``: the traceback)."""
DEBUG_ENV = "MMSEARCH_DEBUG"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    envvar="MMSEARCH_HOME",
    type=click.Path(file_okay=False),
    help="Data folder (database, indexes, config.toml). Env: MMSEARCH_HOME.",
)
@click.option(
    "--model",
    envvar="MMSEARCH_MODEL",
    help="open_clip model: ARCH:TAG, ARCH:/checkpoint.pt, hf-hub:org/name or a model folder. "
    "Env: MMSEARCH_MODEL. Default: the index's model, else ViT-B-32:laion2b_s34b_b79k.",
)
@click.option(
    "--device",
    envvar="MMSEARCH_DEVICE",
    type=click.Choice(["auto", "cpu", "cuda"]),
    help="Where the model runs (default auto: CUDA when present). Env: MMSEARCH_DEVICE.",
)
@click.option(
    "--precision",
    envvar="MMSEARCH_PRECISION",
    type=click.Choice(["auto", "fp32", "bf16"]),
    help="Model precision (default auto: on CPUs with native bf16, bf16 per tower when it agrees with fp32; "
    "on CUDA, bf16/fp16 autocast). Env: MMSEARCH_PRECISION.",
)
@click.option(
    "--engine",
    envvar="MMSEARCH_ENGINE",
    type=click.Choice(["auto", "onnx", "torch"]),
    help="What runs the model on a CPU (default auto: per tower, the fastest engine that agrees with open_clip "
    "fp32, measured once per model and machine; onnx: ONNX Runtime; torch). Env: MMSEARCH_ENGINE.",
)
@click.option(
    "--db-url",
    envvar="MMSEARCH_DB_URL",
    help="SQLAlchemy URL of the metadata database (default SQLite in the home). Env: MMSEARCH_DB_URL.",
)
@click.option(
    "--vector-url",
    envvar="MMSEARCH_VECTOR_URL",
    help="Where vectors live (default FAISS files in the home): a Milvus URL (http://host:19530) or a Milvus Lite "
    "file (milvus.db); needs mmsearch[milvus]. Env: MMSEARCH_VECTOR_URL.",
)
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Say more: -v what mmsearch does (with `ingest`, every file passed over and decoder warnings; with "
    "`serve`, every request), -vv debugging detail.",
)
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
@click.version_option(None, "-V", "--version", package_name="mmsearch", prog_name="mmsearch")
@click.pass_context
def cli(
    ctx: click.Context,
    home: str | None,
    model: str | None,
    device: str | None,
    precision: str | None,
    engine: str | None,
    db_url: str | None,
    vector_url: str | None,
    verbose: int,
    quiet: bool,
) -> None:
    """Search your own photos by meaning: ingest a folder, then query it by text or by image."""
    ctx.call_on_close(configure_logging(log_level(verbose, quiet)))
    ctx.meta[VERBOSITY] = -1 if quiet else verbose
    ctx.obj = {
        "home": home,
        "model": model,
        "device": device,
        "precision": precision,
        "engine": engine,
        "db_url": db_url,
    }
    ctx.obj["vector_url"] = vector_url


for _command in (ingest, query, serve, evaluate, status, show, reindex, check):
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point.

    Start-up and exit of a one-shot process: the imports build about a million objects, and the cyclic
    garbage collector walking them over and over, then once more at exit, cost ~0.15 s of a ~0.9 s cold
    query. So it is off until the engine is open (:func:`mmsearch.cli.context.collect_again`), and frozen
    objects are not walked at exit. Only here: programs that import the library or invoke ``cli`` keep their
    own settings.
    """
    gc.disable()
    atexit.register(_freeze_at_exit)
    try:
        cli(prog_name="mmsearch")
    except Exception as exc:  # not a library error (those are one line already): a bug in mmsearch or below it
        if os.environ.get(DEBUG_ENV):
            raise
        click.echo(
            f"Error: internal error ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else '-'}); "
            f"this is a bug: run again with {DEBUG_ENV}=1 for the traceback and report it",
            err=True,
        )
        sys.exit(INTERNAL_ERROR)


def _freeze_at_exit() -> None:
    """Skip the final walk over the start-up objects, unless torch was loaded (ingest): then the walk is cheap
    next to the work done, and native extensions it brings (triton) report every object left uncollected."""
    if "torch" not in sys.modules:
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    main()
