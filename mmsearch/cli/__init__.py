"""The ``mmsearch`` command: parse options, make one Engine call, format the result.

Heavy modules (the engine, SQLAlchemy, torch) are imported inside commands so
``mmsearch --help`` stays instant.
"""

from __future__ import annotations

import atexit
import gc
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mmsearch.cli.logs import configure_logging, log_level
from mmsearch.cli.search_options import apply_search_defaults, engine_options, search_options
from mmsearch.errors import MmsearchError
from mmsearch.kinds import DEFAULT_MODE, MODES

PARTIAL_FAILURE = 3
"""Exit code of a run that completed with per-item failures (files that failed to ingest, bad --from-file lines,
drift found by check)."""

if TYPE_CHECKING:
    from mmsearch.engine import Engine
    from mmsearch.searcher import Searcher


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
    configure_logging(log_level(verbose, quiet))
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


VERBOSITY = "mmsearch.verbosity"
"""Key of the global -v count in ``ctx.meta`` (shared by every command's context): -1 with -q, else 0, 1, 2..."""


def verbosity(ctx: click.Context) -> int:
    """How much the global options asked to be told: -1 (-q), 0 (default), 1 (-v), 2 (-vv) and more."""
    return int(ctx.meta.get(VERBOSITY, 0))


@contextmanager
def open_engine(ctx: click.Context, create: bool = True) -> Iterator[Engine]:
    """Open the engine from the global options; library errors become clean messages. Commands that only read
    pass ``create=False``: no database is created as a side effect (a missing one is "nothing indexed")."""
    with library_errors():
        from mmsearch.engine import Engine

        with Engine.open(**ctx.obj, create=create) as engine:
            _collect_again()
            yield engine


@contextmanager
def open_searcher(ctx: click.Context, service: bool) -> Iterator[Searcher]:
    """The searcher of the global options: the home's running query service, else the engine
    (:func:`mmsearch.searcher.open_searcher` picks; it only reads: no database is created); library errors
    become clean messages."""
    with library_errors():
        from mmsearch.searcher import open_searcher

        with open_searcher(**ctx.obj, service=service, create=False) as searcher:
            _collect_again()
            yield searcher


@contextmanager
def library_errors() -> Iterator[None]:
    """Library errors become ``Error: ...`` and exit code 1. Pillow's bomb warnings are dropped:
    mmsearch applies its own pixel limit and reports each such file itself."""
    with warnings.catch_warnings(), clean_errors():
        # Pillow's DecompressionBombWarning, by its message: importing Pillow here would slow served queries
        warnings.filterwarnings("ignore", r"Image size \(\d+ pixels\) exceeds limit", RuntimeWarning)
        yield


@contextmanager
def clean_errors() -> Iterator[None]:
    """Library errors become ``Error: ...`` and their exit code (2 for bad queries, else 1)."""
    try:
        yield
    except MmsearchError as exc:
        error = click.ClickException(str(exc))
        error.exit_code = exc.exit_code  # type: ignore[misc]  # click types it a ClassVar; main() reads the instance's
        raise error from exc


@cli.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--batch-size", type=click.IntRange(min=1), help="Images per model call (default 32; 256 on a GPU).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Decoding threads (default: half the CPUs, 1 to 4; with a GPU, every CPU up to 16).",
)
@click.option(
    "--encode-streams",
    type=click.IntRange(min=1),
    help="Batches the model encodes at once, sharing the CPU threads (default: 2 on a CPU with 2+ threads, "
    "1 on a GPU). Env: MMSEARCH_ENCODE_STREAMS.",
)
@click.option(
    "--captions",
    "manifests",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Caption manifest mapping image paths to captions (.tsv, .csv, .jsonl, COCO .json); repeatable.",
)
@click.option(
    "--speech-model",
    envvar="MMSEARCH_SPEECH_MODEL",
    help="faster-whisper model for audio without .srt/.vtt/.txt: a size name (tiny.en, base, small, ...) or a "
    "local CTranslate2 folder. Default: small. Env: MMSEARCH_SPEECH_MODEL.",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    help="Where images are decoded and encoded: local threads (default) or a Ray cluster (mmsearch[ray]).",
)
@click.option("--ray-address", help="Ray cluster to join with --executor ray (default: start a local one).")
@click.option("--retry-failed", is_flag=True, help="Retry files that failed before even if they have not changed.")
@click.option(
    "--wait/--no-wait",
    default=True,
    help="When another ingest or reindex is writing to this home: wait for it (default, with a message), or fail.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
@click.pass_context
def ingest(
    ctx: click.Context,
    folder: Path,
    batch_size: int | None,
    workers: int | None,
    encode_streams: int | None,
    manifests: tuple[Path, ...],
    speech_model: str | None,
    executor: str | None,
    ray_address: str | None,
    retry_failed: bool,
    wait: bool,
    as_json: bool,
    progress: bool | None,
) -> None:
    """Embed every image, audio and video file under FOLDER, with captions, transcripts and video keyframes; re-runs
    redo only changes."""
    from mmsearch.cli.output import emit_json, print_ingest_report
    from mmsearch.cli.progress import progress_bar

    ctx.obj.update(batch_size=batch_size, workers=workers, encode_streams=encode_streams, speech_model=speech_model)
    ctx.obj.update(executor=executor, ray_address=ray_address)
    with open_engine(ctx) as engine, progress_bar(progress) as callback:
        report = engine.ingest(
            folder, progress=callback, captions=manifests, retry_failed=retry_failed, wait=wait, on_wait=_say_waiting
        )
    if as_json:
        emit_json(report.to_dict())
    else:
        print_ingest_report(report, verbose=verbosity(ctx) > 0)
    if report.failed:
        ctx.exit(PARTIAL_FAILURE)


@cli.command()
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
    from mmsearch.cli.output import emit_json, print_hits, print_paths
    from mmsearch.search.paths import client_path, resolve_query_images

    if text is not None and text_option is not None:
        raise click.UsageError("give the text once: as TEXT or as --text")
    text = text if text is not None else text_option
    if from_file is not None and (text is not None or image is not None):
        raise click.UsageError("--from-file does not go with TEXT or --image")
    if from_file is None and text is None and image is None:
        raise click.UsageError("give TEXT, --image (or both), or --from-file")
    if as_json and (paths or print0):
        raise click.UsageError("--json and --paths/--print0 do not go together")
    settings = _settings(ctx)
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
    with open_searcher(ctx, service=not no_service) as searcher:
        hits = searcher.search(text, image=picture, k=k, **search)
    label = " + ".join(part for part in (f"image {image}" if image else "", repr(text) if text else "") if part)
    if as_json:
        emit_json(hits.to_dict())
    elif paths or print0:
        print_paths(hits, nul=print0)
    else:
        print_hits(hits, label, explain=search.get("explain", False))
    if hits.note and not as_json:
        click.echo(f"note: {hits.note}", err=True)


def _settings(ctx: click.Context) -> Any:
    """The resolved settings of the global options (config files and environment included)."""
    from mmsearch.config import resolve_settings

    with clean_errors():
        return resolve_settings(**ctx.obj)


@cli.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on (loopback: this machine only; anything else prints a warning).",
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="Port to listen on (0: any free one)."
)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int) -> None:
    """Keep the engine warm and serve the web app and HTTP API; `mmsearch query` on this home uses it while it runs.

    Prints a one-time sign-in link for a browser. API clients send the access token of service.json in the home
    (owner-only) in the X-Mmsearch-Token header. Ctrl-C or SIGTERM stops it.
    """
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with open_engine(ctx) as engine:
        with library_errors():
            from mmsearch.web import require_server_extra

            require_server_extra()
            from mmsearch.web.server import WebServer

            server = WebServer(engine, host, port)  # a bad address fails now, before any model is loaded
            if not engine.warm_up(images=True):
                click.echo("nothing is indexed yet: searches fail until you run `mmsearch ingest`", err=True)
        if server.exposed:
            click.echo(
                f"mmsearch: warning: listening on {host}, not only on this machine: anyone who can reach it may try; "
                "every request needs the token of service.json or a sign-in link",
                err=True,
            )
        gc.collect()
        gc.freeze()  # what is loaded now lives as long as the service: no collection need ever walk it again
        info = server.start()
        click.echo(f"mmsearch: serving {engine.settings.home} at {info.url} (Ctrl-C to stop)", err=True)
        click.echo(f"mmsearch: open this link to sign in (it works once): {server.signin_url()}", err=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.shutdown()
            server.close()


@cli.command(name="eval")
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
        apply_search_defaults(options, _settings(ctx))
        search = engine_options(options)
    with open_engine(ctx, create=False) as engine:
        report = engine.evaluate(queries, modes=modes or MODES, k=k, **search)
    if as_json:
        emit_json(report.to_dict())
    else:
        print_eval_report(report)


@cli.command()
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


@cli.command()
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


@cli.command()
@click.option("--wait/--no-wait", default=True, help="When an ingest is writing to this home: wait (default) or fail.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def reindex(ctx: click.Context, wait: bool, as_json: bool) -> None:
    """Rebuild the vector index from the vectors stored in the database."""
    from mmsearch.cli.output import emit_json

    with open_engine(ctx, create=False) as engine:
        result = engine.reindex(wait=wait, on_wait=_say_waiting)
    if as_json:
        emit_json(result.to_dict())
    else:
        for collection, entry in result.indexes.items():
            click.echo(f"rebuilt {collection} index {entry.path}: {entry.vectors} vectors")
        click.echo(f"model {result.model}, {result.vectors} vectors in {result.elapsed_s:.2f} s")


@cli.command()
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
        report = engine.check(repair=repair, wait=wait, on_wait=_say_waiting)
    if as_json:
        emit_json(report.to_dict())
    else:
        print_check(report)
    if report.needs_attention:
        ctx.exit(PARTIAL_FAILURE)


def _say_waiting(message: str) -> None:
    click.echo(message, err=True)


def main() -> None:
    """Console-script entry point.

    Start-up and exit of a one-shot process: the imports build about a million objects, and the cyclic
    garbage collector walking them over and over, then once more at exit, cost ~0.15 s of a ~0.9 s cold
    query. So it is off until the engine is open (:func:`_collect_again`), and frozen objects are not
    walked at exit. Only here: programs that import the library or invoke ``cli`` keep their own settings.
    """
    gc.disable()
    atexit.register(_freeze_at_exit)
    cli(prog_name="mmsearch")


def _freeze_at_exit() -> None:
    """Skip the final walk over the start-up objects, unless torch was loaded (ingest): then the walk is cheap
    next to the work done, and native extensions it brings (triton) report every object left uncollected."""
    if "torch" not in sys.modules:
        gc.freeze()


def _collect_again() -> None:
    """After start-up (imports done, engine open): what exists now stays (frozen, never scanned again), and
    the collector runs again for what commands create, so long ones (ingest) keep bounded memory."""
    if not gc.isenabled():  # disabled only by main()
        gc.freeze()
        gc.enable()


if __name__ == "__main__":  # pragma: no cover
    main()
