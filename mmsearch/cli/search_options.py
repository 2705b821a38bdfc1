"""The search options shared by ``query`` and ``eval``: parsed here, handed to the Engine as keywords."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from mmsearch.kinds import CUTOFF_METHODS, FUSION_METHODS, IMAGE, SEARCH_KINDS


def search_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --kind, --fusion, --weight and the filters to a command (in this order in --help)."""
    decorators = [
        click.option(
            "--kind",
            type=click.Choice(SEARCH_KINDS),
            help="What to find: images, captions, transcript segments (with times), audio files, videos (by their "
            f"best moment), video keyframes, or any asset. Default: {IMAGE}, or `kind` in config.toml.",
        ),
        click.option(
            "--fusion",
            type=click.Choice(FUSION_METHODS),
            help="How retrievers combine: calibrated weighted sum (zscore, minmax) or reciprocal rank (rrf).",
        ),
        click.option(
            "--weight",
            "weights",
            multiple=True,
            metavar="NAME=W",
            help="Retriever weight, repeatable: image, caption, transcript, frame, keyword (0 drops it).",
        ),
        click.option("--path", "path_filter", help="Only paths under this prefix, or matching this glob."),
        click.option("--ext", "extensions", multiple=True, help="Only these extensions (repeatable; jpg, mp3...)."),
        click.option(
            "--since", type=click.DateTime(), help="Only photos taken (EXIF date, else file time) at or after this."
        ),
        click.option(
            "--until", type=click.DateTime(), help="Only photos taken (EXIF date, else file time) at or before this."
        ),
        click.option("--min-score", type=float, help="Drop hits scoring below this (cosine with one retriever)."),
        click.option(
            "--cutoff",
            type=click.Choice(CUTOFF_METHODS),
            help="Adaptive relevance cut per query: at the largest score gap, or above mean + 1 std.",
        ),
        click.option("--diverse", is_flag=True, help="Collapse near-duplicates and re-order by MMR."),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def apply_search_defaults(params: dict[str, Any], settings: Any) -> None:
    """Fill the search options left out on the command line from the settings (config files, else built-in)."""
    params["kind"] = params.get("kind") or settings.kind
    if "mode" in params:
        params["mode"] = params["mode"] or settings.mode


def engine_options(params: dict[str, Any]) -> dict[str, Any]:
    """Turn the parsed CLI options into ``Engine.search`` keywords: filters built (``--path`` made absolute
    here, on the client), weights parsed; their values are checked where they are made (Filters,
    SearchOptions), whose errors the caller shows as usage errors."""
    from mmsearch.search.filters import Filters, timestamp
    from mmsearch.search.paths import path_filter

    extensions = tuple(
        part.strip().lower().lstrip(".") for value in params.pop("extensions", ()) for part in value.split(",")
    )
    path = params.pop("path_filter", None)
    since, until = params.pop("since", None), params.pop("until", None)
    filters = Filters(
        path=path_filter(path) if path else None,
        ext=tuple(e for e in extensions if e),
        since=timestamp(since) if since is not None else None,
        until=timestamp(until, end_of_day=True) if until is not None else None,
    )
    return {"filters": filters, "weights": parse_weights(params.pop("weights", ())), **params}


def parse_weights(values: tuple[str, ...]) -> dict[str, float] | None:
    """``NAME=W`` pairs as a mapping (names and values are checked by SearchOptions)."""
    weights = {}
    for value in values:
        name, sep, number = value.partition("=")
        try:
            if not sep:
                raise ValueError
            weights[name.strip()] = float(number)
        except ValueError:
            raise click.BadParameter(f"{value!r} is not NAME=WEIGHT", param_hint="--weight") from None
    return weights or None
