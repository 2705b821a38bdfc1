"""`mmsearch ingest`."""

from __future__ import annotations

from pathlib import Path

import click

from mmsearch.cli.context import PARTIAL_FAILURE, open_engine, say_waiting, verbosity


@click.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    help="Images per model call and per database write (default: on a CPU the size the engine's calibration "
    "measured fastest, written 64 at a time, else 32; 256 on a GPU).",
)
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
            folder, progress=callback, captions=manifests, retry_failed=retry_failed, wait=wait, on_wait=say_waiting
        )
    if as_json:
        emit_json(report.to_dict())
    else:
        print_ingest_report(report, verbose=verbosity(ctx) > 0)
    if report.failed:
        ctx.exit(PARTIAL_FAILURE)
