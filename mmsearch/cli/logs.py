"""Where the library's log records go when the CLI runs: stderr, at the level -v/-q chose.

The library only logs (``logging.getLogger(__name__)``) and never prints; this is the one place that decides what
the user sees of it. Default: warnings and errors. ``-v``: what mmsearch does, including the query service's
request log. ``-vv``: debugging detail. ``-q``: errors only.

Other libraries' records (open_clip logs ``Failed to download weights ...`` on the root logger before it raises
the error mmsearch reports in its own ``Error:`` line) are shown only with ``-v``: the root logger gets a handler of
ours, so a module-level ``logging.error()`` elsewhere cannot install ``basicConfig``'s stderr handler either.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import click

LOGGER = "mmsearch"
SILENT = logging.CRITICAL + 1


class ClickHandler(logging.Handler):
    """Writes records to the current stderr through click (so CliRunner, pipes and NO_COLOR all behave)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(self.format(record), err=True)
        except Exception:  # a broken stderr must not break the command
            self.handleError(record)


def log_level(verbose: int, quiet: bool) -> int:
    """The level that ``-v`` (repeatable) and ``-q`` ask for; they do not go together."""
    if quiet and verbose:
        raise click.UsageError("-q and -v do not go together")
    if quiet:
        return logging.ERROR
    return {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)


def configure_logging(level: int) -> Callable[[], None]:
    """Send the ``mmsearch`` loggers' records at ``level`` and above to stderr (replacing an earlier set-up).

    Returns what puts both loggers back as they were (the CLI calls it when the command ends), so a program that
    runs the CLI in-process (``CliRunner``, ``cli.main(standalone_mode=False)``) keeps its own logging set-up."""
    logger, root = logging.getLogger(LOGGER), logging.getLogger()
    saved = [(each, list(each.handlers), each.level, each.propagate) for each in (logger, root)]
    for each in (logger, root):
        for handler in [h for h in each.handlers if isinstance(h, ClickHandler)]:
            each.removeHandler(handler)
    handler = ClickHandler()
    detail = "%(levelname)s %(name)s: " if level <= logging.DEBUG else ""
    handler.setFormatter(logging.Formatter(f"mmsearch: {detail}%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    # Other libraries' records (the root logger): warnings and above with -v, nothing otherwise.
    others = ClickHandler(level=logging.WARNING if level <= logging.INFO else SILENT)
    others.setFormatter(logging.Formatter("%(name)s: %(levelname)s: %(message)s"))
    root.addHandler(others)
    return lambda: _restore(saved)


def _restore(saved: list[tuple[logging.Logger, list[logging.Handler], int, bool]]) -> None:
    for each, handlers, level, propagate in saved:
        each.handlers[:] = handlers
        each.setLevel(level)
        each.propagate = propagate
