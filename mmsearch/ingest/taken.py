"""When a photo was taken, from its EXIF header (DateTimeOriginal, else DateTime), as Unix seconds."""

from __future__ import annotations

import contextlib
import datetime as dt

from PIL import Image

_EXIF_IFD = 0x8769
_DATE_TIME_ORIGINAL = 0x9003
_OFFSET_TIME_ORIGINAL = 0x9011
_DATE_TIME = 0x0132
_FORMAT = "%Y:%m:%d %H:%M:%S"


def taken_at(image: Image.Image) -> float | None:
    """The capture time in Unix seconds, or None when the header has no readable date.

    EXIF dates carry no zone unless ``OffsetTimeOriginal`` says one; without it they are read as local
    time, as ``--since``/``--until`` dates are. Best effort: odd values are ignored, never raised.
    """
    try:
        exif = image.getexif()
        details = exif.get_ifd(_EXIF_IFD)
    except Exception:
        return None
    candidates = [(details.get(_DATE_TIME_ORIGINAL), details.get(_OFFSET_TIME_ORIGINAL)), (exif.get(_DATE_TIME), None)]
    for raw, offset in candidates:
        seconds = _parse(raw, offset)
        if seconds is not None:
            return seconds
    return None


def _parse(raw: object, offset: object) -> float | None:
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "ignore")
    if not isinstance(raw, str):
        return None
    try:
        moment = dt.datetime.strptime(raw.strip("\x00 ")[:19], _FORMAT)
    except ValueError:
        return None  # "0000:00:00 00:00:00" and other placeholders
    if isinstance(offset, str):
        with contextlib.suppress(ValueError):
            moment = moment.replace(tzinfo=dt.datetime.strptime(offset.strip("\x00 "), "%z").tzinfo)
    return moment.timestamp()
