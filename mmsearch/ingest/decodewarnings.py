"""Decoder warnings (Pillow's "Possibly corrupt EXIF data", "Tag data larger than file", pillow-heif's ..., and
the messages libtiff writes itself) caught per file instead of printed on stderr.

:func:`routed` wraps an ingest run: while it is active, every warning raised by Pillow or pillow-heif while a
thread is inside :func:`collecting` goes to that file's list (each occurrence, not only the first per code
line); any other warning is shown as usual.

libtiff (the C library behind Pillow's compressed TIFFs) does not raise Python warnings: its default handlers
write ``module: message.`` straight to file descriptor 2. Pillow already silences libtiff's *warnings*
(``TIFFSetWarningHandler(NULL)`` before every libtiff decode, in ``TiffDecode.c``) but not its *errors*
(``ZIPDecode: Decoding error at scanline 0, incorrect header check.``, ``JPEGLib: ...``), so :func:`routed`
installs, once per process, an error handler of its own into the libtiff that Pillow uses. libtiff calls it on
the thread that decodes (Pillow's decoders run on the caller's thread), so a message goes to that thread's
:func:`collecting` list: the right file, whatever the other threads decode, with no redirection of fd 2 (the
user's own stderr lines are untouched, and no pipe can fill). Outside :func:`collecting` the handler logs the
line as a warning (the CLI shows it as ``mmsearch: ZIPDecode: ...``). Where the handler cannot be installed
(no libtiff, no C library to format with), libtiff keeps its own.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

_DECODER_MODULES = r"(PIL|pillow_heif)(\.|$)"
_MESSAGE_BYTES = 1024
log = logging.getLogger(__name__)
_local = threading.local()
_install_lock = threading.Lock()
_installed: list[object] = []
"""The libtiff handler once installed (kept referenced: libtiff holds a pointer to it for the process's life)."""
_HANDLER_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)


@contextmanager
def routed() -> Iterator[None]:
    """Route decoder warnings raised inside :func:`collecting` to its list, for the duration (restored after)."""
    install_libtiff_handler()
    with warnings.catch_warnings():
        warnings.filterwarnings("always", module=_DECODER_MODULES)
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None) -> None:
            sink: list[str] | None = getattr(_local, "sink", None)
            if sink is None:
                shown(message, category, filename, lineno, file, line)
            else:
                sink.append(f"{category.__name__}: {message}")

        warnings.showwarning = show
        yield


@contextmanager
def collecting(sink: list[str]) -> Iterator[list[str]]:
    """Within a :func:`routed` run, the warnings this thread raises go to ``sink`` (nested calls: the innermost)."""
    previous = getattr(_local, "sink", None)
    _local.sink = sink
    try:
        yield sink
    finally:
        _local.sink = previous


def install_libtiff_handler() -> bool:
    """Route libtiff's error messages (see the module docs); True once installed (idempotent, thread-safe)."""
    with _install_lock:
        if not _installed:
            handler = _make_handler()
            if handler is not None:
                _installed.append(handler)
        return bool(_installed)


def _make_handler() -> object | None:
    try:
        from PIL import _imaging

        # dlsym on Pillow's own module finds the libtiff it is linked with (bundled or the system's)
        set_handler = ctypes.CDLL(_imaging.__file__).TIFFSetErrorHandler
        vsnprintf = ctypes.CDLL(None).vsnprintf
    except (ImportError, OSError, AttributeError, TypeError):
        return None
    vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
    vsnprintf.restype = ctypes.c_int
    set_handler.argtypes = [_HANDLER_TYPE]
    set_handler.restype = ctypes.c_void_p

    def handle(module: bytes | None, fmt: bytes | None, args: int | None) -> None:
        try:
            buffer = ctypes.create_string_buffer(_MESSAGE_BYTES)
            vsnprintf(buffer, _MESSAGE_BYTES, fmt or b"", args)
            _deliver(_libtiff_line(module, buffer.value))
        except Exception:  # an exception cannot cross into C; a lost message beats a crash
            pass

    handler = _HANDLER_TYPE(handle)
    set_handler(handler)
    return handler


def _libtiff_line(module: bytes | None, text: bytes) -> str:
    message = text.decode("utf-8", "replace").rstrip(".\n")
    return f"{module.decode('utf-8', 'replace')}: {message}" if module else message


def _deliver(line: str) -> None:
    sink: list[str] | None = getattr(_local, "sink", None)
    if sink is None:
        log.warning("%s", line)
    else:
        sink.append(f"libtiff: {line}")
