"""Formatting of CLI results: tables for people, JSON and bare paths for programs."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from mmsearch.pathnames import display, json_text

if TYPE_CHECKING:  # type names only: a query answered by the service imports none of what they pull in
    from mmsearch.check import IntegrityReport
    from mmsearch.evaluation import EvalReport
    from mmsearch.ingest.report import IngestReport
    from mmsearch.search.hits import Hit
    from mmsearch.status import StatusReport
    from mmsearch.video.storyboard import Storyboard


def emit_json(data: Any) -> None:
    """One JSON document on one line (file names that are not valid UTF-8 as ``\\udcNN`` escapes: they round-trip)."""
    click.echo(json_text(json.dumps(data, ensure_ascii=False, default=str)))


def _console(width: int | None = None):
    from rich.console import Console

    return Console(soft_wrap=True, highlight=False, width=width)


TEXT_MIN = 20
"""The narrowest the text column of a table gets (the path column takes the rest)."""


def print_hits(hits: Sequence[Hit], query: str, explain: bool = False, width: int | None = None) -> None:
    """The hits as a table that fits ``width`` columns (default: the terminal's): paths relative to the current
    folder and shortened from the middle (a file name is never split), evidence lines after the table."""
    from rich.table import Table

    if not hits:
        click.echo(f"no results for {query}")
        return
    console = _console(width)
    with_text = any(hit.text is not None or hit.start is not None for hit in hits)
    table = Table(title=f"top {len(hits)} for {query}", title_justify="left", box=None, pad_edge=False)
    digits = len(str(len(hits)))
    table.add_column("#", justify="right", no_wrap=True, min_width=digits)
    table.add_column("score", justify="right", no_wrap=True, min_width=6)
    gaps = 2 * (4 if with_text else 2)  # rich's padding between columns
    fixed = digits + 6 + gaps + (_match_width(hits) + TEXT_MIN if with_text else 0)
    room = max(24, console.width - fixed)
    shown = [shorten_path(display(display_path(hit.path)), room) for hit in hits]
    widest = max(len(path) for path in shown)
    if widest > room:  # a file name longer than the room: the line grows, the name stays whole
        console = _console(console.width + widest - room)
    table.add_column("path", no_wrap=True, min_width=widest)
    if with_text:
        table.add_column("match", no_wrap=True, min_width=_match_width(hits))
        table.add_column("text", overflow="fold", min_width=TEXT_MIN, ratio=1)
    for hit, path in zip(hits, shown, strict=True):
        row = [str(hit.rank), f"{hit.score:.4f}", path]
        if with_text:
            row += [_match(hit), hit.text or ""]
        table.add_row(*row)
    console.print(table)
    if explain:
        for hit in hits:
            if hit.evidence:
                console.print(f"#{hit.rank} " + _evidence_line(hit.evidence))


def display_path(path: str, cwd: str | None = None) -> str:
    """``path`` relative to the current folder when it is under it, else as stored."""
    folder = os.path.join(cwd if cwd is not None else os.getcwd(), "")
    return path[len(folder) :] if path.startswith(folder) else path


def shorten_path(path: str, width: int) -> str:
    """``path`` in at most ``width`` characters where it can be: whole leading and trailing folders kept (taken
    in turn from each end), the middle ones replaced by ``…``; the file name is never cut (a name longer
    than ``width`` is shown whole, after ``…/``)."""
    if len(path) <= width:
        return path
    head, _, name = path.rpartition("/")
    folders = head.split("/")
    kept_left, kept_right = 0, len(folders)  # folders[kept_left:kept_right] are left out
    from_left = True
    while kept_left < kept_right:
        left, right = (kept_left + 1, kept_right) if from_left else (kept_left, kept_right - 1)
        gap = ["…"] if left < right else []
        if len("/".join([*folders[:left], *gap, *folders[right:], name])) > width:
            break
        kept_left, kept_right, from_left = left, right, not from_left
    return "/".join([*folders[:kept_left], "…", *folders[kept_right:], name])


def _evidence_line(evidence: dict[str, Any]) -> str:
    parts = []
    for name, entry in evidence["contributions"].items():
        raw = "-" if entry["raw_score"] is None else f"{entry['raw_score']:.3f}"
        rank = "-" if entry["rank"] is None else f"#{entry['rank']}"
        parts.append(f"{name} {raw} {rank} ({entry['contribution']:+.3f})")
    return f"[dim]{evidence['method']}: " + ", ".join(parts) + "[/dim]"


def _match_width(hits: Sequence[Hit]) -> int:
    return max(len(_match(hit)) for hit in hits)


def print_eval_report(report: EvalReport) -> None:
    from rich.table import Table

    table = Table(title=f"search quality, kind {report.kind}", title_justify="left")
    for column in ("mode", "R@1", "R@5", "R@10", "MRR", "nDCG@10", "p50 ms", "p95 ms", "queries"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for mode in report.modes:
        m = mode.metrics
        table.add_row(
            mode.mode,
            *(f"{m[name]:.3f}" for name in ("recall@1", "recall@5", "recall@10", "mrr", "ndcg@10")),
            f"{mode.latency_ms['p50']:.1f}",
            f"{mode.latency_ms['p95']:.1f}",
            str(mode.queries),
        )
    _console().print(table)


def _match(hit: Hit) -> str:
    if hit.start is None:
        return hit.match
    end = f"{hit.end:.1f}" if hit.end is not None else "?"
    frame = f" (frame {hit.frame_time:.1f} s)" if hit.frame_time is not None else ""
    return f"{hit.match} {hit.start:.1f}-{end} s{frame}"


def print_paths(hits: Sequence[Hit], nul: bool = False) -> None:
    """One path a line, as the bytes on disk (a name that is not valid UTF-8 is written as it is, for xargs);
    with ``nul``, each ended by a NUL byte instead of a newline (``xargs -0``: names with newlines too)."""
    for hit in hits:
        click.echo(os.fsencode(hit.path) + (b"\0" if nul else b"\n"), nl=False)


def print_ingest_report(report: IngestReport, verbose: bool = False) -> None:
    blocked = report.audio_blocked()
    if blocked is not None:  # said first: the whole audio side of the run failed for one reason
        click.echo(
            f"every audio file needing speech-to-text failed ({blocked.count}): {blocked.reason} [{blocked.code}]",
            err=True,
        )
    click.echo(
        f"ingested {report.folder} with {report.model}: "
        f"{report.added} added, {report.updated} updated, {report.removed} removed, "
        f"{report.skipped} unchanged, {len(report.failed)} failed "
        f"in {report.elapsed_s:.1f} s ({report.embedded} embedded, {report.images_per_s:.1f} images/s"
        f"{f', {report.reused} reused' if report.reused else ''})"
    )
    if report.failed_before:
        click.echo(f"  {report.failed_before} files skipped: they failed before and have not changed (--retry-failed)")
    texts = _text_changes(report)
    if texts:
        click.echo(f"  texts: {texts}")
    if report.videos:
        click.echo(
            f"  video: {report.videos} videos, {report.video_s:.0f} s, {report.keyframes} keyframes, "
            f"{report.video_s_per_s:.1f} video seconds per second"
        )
    if report.precision:
        towers = ", ".join(
            " ".join(str(part) for part in (tower, entry.get("engine"), entry["dtype"]) if part)
            for tower, entry in report.precision.items()
        )
        batch = f"; images encoded {report.batch_size} a call" if report.embedded and report.batch_size else ""
        click.echo(f"  precision: {towers}{batch}")
    for warning in report.warnings:
        click.echo(f"  warning: {warning}", err=True)
    _print_failures(report, verbose)
    _print_passed_over(report, verbose)


def _print_passed_over(report: IngestReport, verbose: bool) -> None:
    """Files not indexed (by reason) and decoder warnings: counted, or listed with -v."""
    ignored = report.ignored_by_reason()
    if ignored:
        counts = ", ".join(f"{count} {code}" for code, count in ignored.items())
        click.echo(f"  not indexed: {counts}" + ("" if verbose else " (-v lists them)"))
    if verbose:
        for item in report.ignored:
            click.echo(f"  skipped: {display(item.path)}: {item.detail} [{item.code}]")
        for noted in report.file_warnings:
            click.echo(f"  decoder warning: {display(noted.path)}: {noted.message}", err=True)
    elif report.file_warnings:
        click.echo(f"  {len(report.file_warnings)} decoder warnings (-v shows them)", err=True)


LISTED = 5
"""Files named per failure cause without -v (all of them with -v, and in --json)."""


def _print_failures(report: IngestReport, verbose: bool) -> None:
    """One line per failure cause (with its count), then its files: a cause shared by many files is said once."""
    for group in report.failure_groups():
        if group.count == 1:
            click.echo(f"  failed: {display(group.paths[0])}: {group.reason} [{group.code}]", err=True)
            continue
        click.echo(f"  failed: {group.count} files: {group.reason} [{group.code}]", err=True)
        shown = group.paths if verbose else group.paths[:LISTED]
        for path in shown:
            click.echo(f"    {display(path)}", err=True)
        if len(shown) < group.count:
            click.echo(f"    ... and {group.count - len(shown)} more (-v lists them)", err=True)


def print_check(report: IntegrityReport) -> None:
    """The integrity report: one line per part, then what a repair did."""
    lines = [f"files:     {report.files} images, {report.files_without_vector} without a vector"]
    lines += [f"  lost: {display(path)}" for path in report.lost_sample]
    if report.duplicate_paths:
        lines.append(f"duplicates: {len(report.duplicate_paths)} paths stored twice")
    for name, entry in report.collections.items():
        state = (
            "ok"
            if entry.matches
            else (f"{entry.missing} missing, {entry.extra} extra" if entry.index is not None else "no index file")
        )
        lines.append(f"{name + ' index:':<18}{entry.database} in the database, {state}")
    if report.keyword is not None:
        keyword = "ok" if report.keyword.ok else f"{report.keyword.missing} missing, {report.keyword.extra} extra"
        lines.append(f"keyword index:    {keyword}")
    done = report.repaired
    if done is not None:
        lines.append(
            f"repaired:  {len(done.reembed_next_ingest)} files to re-embed on the next ingest, {done.vectors_dropped} "
            f"unused vectors dropped, indexes rebuilt: {', '.join(done.indexes_rebuilt) or 'none'}"
            + (", keyword index rebuilt" if done.keyword_rebuilt else "")
        )
    verdict = (
        "ok"
        if report.ok
        else (
            "drift left: run `mmsearch check --repair`"
            if report.needs_attention
            else "ok once the next ingest has embedded the marked files"
        )
    )
    lines.append(f"result:    {verdict}")
    click.echo("\n".join(lines))


def _text_changes(report: IngestReport) -> str:
    parts = []
    for kind in sorted(set(report.texts_added) | set(report.texts_removed)):
        added, removed = report.texts_added.get(kind, 0), report.texts_removed.get(kind, 0)
        parts.append(f"{kind}s +{added} -{removed}")
    if report.resynced:
        parts.append(f"{report.resynced} files re-synced")
    if report.transcribed:
        rtf = report.transcribe_s / report.audio_s if report.audio_s else 0.0
        parts.append(f"{report.transcribed} audio files transcribed (real-time factor {rtf:.2f})")
    return ", ".join(parts)


def print_status(status: StatusReport) -> None:
    lines = [f"home:      {status.home}", f"database:  {status.database}" + _size(status.database_bytes)]
    if status.model is None:
        lines.append("model:     none yet (nothing ingested)")
    else:
        lines.append(
            f"model:     {status.model['spec']} (dim {status.model['dim']}, fingerprint {status.model['fingerprint']})"
        )
    kinds = ", ".join(_count(count, kind) for kind, count in sorted(status.files_by_kind.items())) or "0 files"
    lines.append(f"files:     {kinds}" + _size(status.files_bytes, "on disk"))
    texts = ", ".join(_count(count, kind) for kind, count in sorted(status.texts_by_kind.items())) or "none"
    lines.append(f"texts:     {texts}")
    lines.append(f"vectors:   {status.vectors} stored")
    if status.failed_files:
        lines.append(
            f"failed:    {status.failed_files} files failed and are skipped until they change "
            "(listed by --json; ingest --retry-failed retries them)"
        )
    lines.append(
        f"indexes:   exact (flat) below {status.hnsw_threshold} vectors per collection, HNSW from "
        f"{status.hnsw_threshold} (back to flat below {status.hnsw_shrink_below}); setting hnsw_threshold"
    )
    for collection, index in status.indexes.items():
        detail = f"{index.get('kind')}, {index.get('vectors')} vectors" if index.get("exists") else ""
        lines.append(
            f"{collection + ' index:':<{18}}{index['path']}"
            + (f" ({detail}, " if detail else " (")
            + index["state"]
            + ")"
            + _size(index.get("bytes"))
        )
    click.echo("\n".join(lines))


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 or noun == "audio" else f"{count} {noun}s"


def _size(value: float | None, what: str = "") -> str:
    if value is None:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            text = f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
            return f", {text}" + (f" {what}" if what else "")
        value /= 1024
    return ""


def print_storyboard(board: Storyboard) -> None:
    from rich.table import Table

    table = Table(title=f"{board.path}: {len(board.shots)} shots, {board.duration:.1f} s", title_justify="left")
    for column in ("shot", "time", "keyframes", "said"):
        table.add_column(column, overflow="fold", justify="right" if column == "shot" else "left")
    for number, shot in enumerate(board.shots, 1):
        frames = ", ".join(f"{t:.1f}" for t in shot.frames)
        said = " / ".join(line.text for line in shot.lines)
        table.add_row(str(number), f"{_clock(shot.start)}-{_clock(shot.end)}", frames, said)
    _console().print(table)
    for line in board.lines:
        when = f"{_clock(line.start)} " if line.start is not None else ""
        click.echo(f"  {when}{line.text}")


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes):02d}:{rest:04.1f}"
