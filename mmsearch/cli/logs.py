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


def configure_logging(level: int) -> None:
    """Send the ``mmsearch`` loggers' records at ``level`` and above to stderr (replacing an earlier set-up)."""
    logger = logging.getLogger(LOGGER)
    for handler in [h for h in logger.handlers if isinstance(h, ClickHandler)]:
        logger.removeHandler(handler)
    handler = ClickHandler()
    detail = "%(levelname)s %(name)s: " if level <= logging.DEBUG else ""
    handler.setFormatter(logging.Formatter(f"mmsearch: {detail}%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    _configure_others(level)


def _configure_others(level: int) -> None:
    """Other libraries' records (the root logger): warnings and above with ``-v``, nothing otherwise."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, ClickHandler)]:
        root.removeHandler(handler)
    handler = ClickHandler(level=logging.WARNING if level <= logging.INFO else SILENT)
    handler.setFormatter(logging.Formatter("%(name)s: %(levelname)s: %(message)s"))
    root.addHandler(handler)
