"""Errors raised by the mmsearch library.

Library code raises these and never prints or exits; the CLI turns them into
clean messages and non-zero exit codes.
"""

from __future__ import annotations

from mmsearch.reasons import DECODE_ERROR


class MmsearchError(Exception):
    """Base class of every error mmsearch raises on purpose."""

    exit_code = 1


class ConfigError(MmsearchError):
    """A setting is invalid (bad device, unreadable config file, ...)."""


class FolderNotFoundError(MmsearchError):
    """The folder to ingest does not exist or is not a directory."""


class EmptyFolderError(MmsearchError):
    """The folder holds no supported media and nothing was indexed under it."""


class UnknownModelError(MmsearchError):
    """The model name cannot be resolved or loaded."""


class MissingDependencyError(MmsearchError):
    """An optional dependency is not installed; the message carries the install hint."""


class NoIndexError(MmsearchError):
    """A query was made before anything was ingested."""


class ModelMismatchError(MmsearchError):
    """A different model was asked for than the one the index was built with."""


class UnreadableMediaError(MmsearchError):
    """A media file (for example a query image) cannot be read or decoded.

    ``reason`` is its class in ingest reports, one of :data:`mmsearch.reasons.FAIL_REASONS`.
    """

    def __init__(self, message: str, reason: str = DECODE_ERROR) -> None:
        super().__init__(message)
        self.reason = reason


class IndexCorruptError(MmsearchError):
    """A persisted vector index cannot be read; rebuild it with `mmsearch reindex`."""


class ManifestError(MmsearchError):
    """A caption manifest cannot be read or parsed; the message names the file and line."""


class DatabaseError(MmsearchError):
    """The metadata database cannot be read or written: damaged, not an mmsearch database, or its disk is full.
    The message names the database and what to do."""


class DiskFullError(DatabaseError):
    """A write failed for want of disk space; what was committed before stays intact."""


class LockError(MmsearchError):
    """The home's lock cannot be taken (its lock file cannot be created, say)."""


class LockBusyError(LockError):
    """Another process holds the home's writer lock (an ingest or reindex is running) and waiting was declined."""

    exit_code = 75  # EX_TEMPFAIL: try again later


class NotIndexedError(MmsearchError):
    """A path that is not in the index (or not of the kind asked for, such as ``show`` of a non-video)."""
