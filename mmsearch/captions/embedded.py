"""Captions stored inside image files: EXIF, XMP and IPTC, read from the parsed header only.

Everything here is best effort: metadata written by cameras and editors is often odd, so a block that cannot be
read is skipped, never raised. Nothing here decodes pixels; PNG text chunks that follow the image data are only
seen when the caller has already ``load()``-ed the image.
"""

from __future__ import annotations

import codecs
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator
from typing import Any

from PIL import Image, IptcImagePlugin

from mmsearch.kinds import CAPTION
from mmsearch.textitems import TextItem

# Texts that cameras and tools write by default; they say nothing about the picture. Compared case-insensitively
# after cleaning. Kept deliberately small: only strings seen in the wild as factory defaults.
PLACEHOLDER_CAPTIONS = frozenset(
    {
        "olympus digital camera",
        "sony dsc",
        "dcim",
        "default",
        "exif_jpeg_picture",
        "digital camera",
        "minolta digital camera",
        "konica minolta digital camera",
        "samsung digital camera",
        "kodak digital still camera",
        "lead technologies inc. v1.01",
        "created with gimp",
        "untitled",
        "no description",
        "image",
        "picture",
        "photo",
    }
)
# Bare camera file names used as titles or descriptions, e.g. "IMG_1234", "DSC01234.JPG", "P1010001".
_CAMERA_FILE_NAME = re.compile(r"(?:img|dsc[nf]?|pict|imag|gopr|dji|pxl|mvimg|p)[_-]?\d[\d_-]*(?:\.[a-z]{3,4})?", re.I)
_CONTROL_CHARS = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f\x7f\ufeff]")

# Largest XMP packet parsed; real packets are a few kilobytes (a JPEG segment holds at most 64 KiB).
MAX_XMP_BYTES = 4 * 1024 * 1024

_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

_IMAGE_DESCRIPTION = 0x010E
_XP_TITLE = 0x9C9B
_XP_COMMENT = 0x9C9C
_EXIF_IFD = 0x8769
_USER_COMMENT = 0x9286
_IPTC_CAPTION = (2, 120)
_IPTC_CHARSET = (1, 90)


def clean_caption(text: str) -> str:
    """``text`` on one line: NULs and byte-order marks dropped, control characters and runs of whitespace made
    one space, ends stripped."""
    text = _CONTROL_CHARS.sub(" ", text.replace("\x00", ""))
    return " ".join(text.split())


def is_placeholder(text: str) -> bool:
    """Whether a cleaned caption is a camera or tool default (``OLYMPUS DIGITAL CAMERA``, ``IMG_1234.JPG``, ...)
    or holds no letter or digit at all."""
    if text.casefold() in PLACEHOLDER_CAPTIONS or _CAMERA_FILE_NAME.fullmatch(text):
        return True
    return not any(ch.isalnum() for ch in text)


def embedded_captions(image: Image.Image) -> list[TextItem]:
    """Captions found in the metadata of an image opened with ``Image.open`` (loaded or not).

    Sources, in this order: ``exif`` (ImageDescription, UserComment, XPComment, XPTitle), ``xmp``
    (``dc:description`` then ``dc:title``, the ``x-default`` language first) and ``iptc`` (Caption/Abstract).
    Texts are cleaned with :func:`clean_caption`; empty ones and placeholders are dropped, and a text already
    found in an earlier source is not repeated. Never raises on odd metadata: an unreadable block is skipped.
    """
    items: list[TextItem] = []
    seen: set[str] = set()
    for source, reader in (("exif", _exif_texts), ("xmp", _xmp_texts), ("iptc", _iptc_texts)):
        try:
            texts = list(reader(image))
        except Exception:  # metadata parsers fail in many ways on odd files: skip the block
            continue
        for raw in texts:
            text = clean_caption(raw)
            if text and text not in seen and not is_placeholder(text):
                seen.add(text)
                items.append(TextItem(CAPTION, source, text))
    return items


# ---- EXIF


def _exif_texts(image: Image.Image) -> list[str]:
    ifd0, exif_ifd, endian = _exif_dirs(image)
    fields: list[tuple[dict[int, Any], int, Callable[[Any], str]]] = [
        (ifd0, _IMAGE_DESCRIPTION, _ascii_field),
        (exif_ifd, _USER_COMMENT, lambda value: decode_user_comment(value, endian)),
        (ifd0, _XP_COMMENT, _xp_field),
        (ifd0, _XP_TITLE, _xp_field),
    ]
    texts: list[str] = []
    for directory, tag, decode in fields:
        value = directory.get(tag)
        if value is None:
            continue
        try:
            texts.append(decode(value))
        except (TypeError, ValueError):  # a value of an unexpected type: skip this field only
            continue
    return texts


def _exif_dirs(image: Image.Image) -> tuple[dict[int, Any], dict[int, Any], str]:
    """IFD0, the Exif IFD (may be empty) and the byte order ("<" or ">") of the image's EXIF block."""
    data = image.info.get("exif")
    if data is None and "Raw profile type exif" in image.info:  # ImageMagick's hex text chunk in PNGs
        data = bytes.fromhex("".join(str(image.info["Raw profile type exif"]).split("\n")[3:]))
    if isinstance(data, (bytes, bytearray)):
        exif = Image.Exif()
        exif.load(bytes(data))
        return dict(exif), _exif_ifd(exif), exif.endian or "<"
    tags = getattr(image, "tag_v2", None)  # TIFF: the file's own first directory is IFD0
    if tags is None:
        return {}, {}, "<"
    ifd0 = dict(tags)
    exif_ifd: dict[int, Any] = {}
    if getattr(image, "fp", None) is not None:  # the Exif IFD must be read from the file, still open
        exif_ifd = _exif_ifd(image.getexif())
    return ifd0, exif_ifd, getattr(tags, "_endian", "<")


def _exif_ifd(exif: Image.Exif) -> dict[int, Any]:
    try:
        return dict(exif.get_ifd(_EXIF_IFD))
    except Exception:  # a broken Exif IFD pointer leaves IFD0 usable
        return {}


def _ascii_field(value: Any) -> str:
    """An EXIF ASCII value: Pillow decodes it as latin-1, but many writers put UTF-8 there."""
    if isinstance(value, (bytes, bytearray)):
        return _utf8_or_latin1(bytes(value).split(b"\x00", 1)[0])
    text = str(value).split("\x00", 1)[0]
    try:
        return text.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return text


def decode_user_comment(value: Any, byte_order: str = "<") -> str:
    """Decode an EXIF UserComment: an 8-byte character code (``ASCII``, ``UNICODE``, ``JIS`` or undefined) then
    the text. ``UNICODE`` is UTF-16 in ``byte_order`` (the EXIF block's, ``"<"`` or ``">"``) unless a byte-order
    mark or the position of the zero bytes says otherwise. Text after a NUL is padding and dropped."""
    if isinstance(value, str):
        return value.split("\x00", 1)[0]
    if isinstance(value, (tuple, list)):
        value = bytes(value)
    data = bytes(value)
    header, body = data[:8], data[8:]
    if header == b"UNICODE\x00":
        text = _decode_utf16(body, byte_order)
    elif header == b"JIS\x00\x00\x00\x00\x00":
        text = _decode_jis(body)
    elif header in (b"ASCII\x00\x00\x00", b"\x00" * 8):
        text = _utf8_or_latin1(body)
    else:  # no (or an unknown) character code: some writers put the bare text there
        text = _utf8_or_latin1(data)
    return text.split("\x00", 1)[0]


def _decode_utf16(body: bytes, byte_order: str) -> str:
    if body[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return body.decode("utf-16", "replace")
    body = body[: len(body) - len(body) % 2]
    # Writers disagree on the byte order; mostly-Latin text has its zero bytes all at even or all at odd offsets.
    even_zeros = body[0::2].count(0)
    odd_zeros = body[1::2].count(0)
    if even_zeros > odd_zeros:
        codec = "utf-16-be"
    elif odd_zeros > even_zeros:
        codec = "utf-16-le"
    else:
        codec = "utf-16-be" if byte_order == ">" else "utf-16-le"
    return body.decode(codec, "replace")


def _decode_jis(body: bytes) -> str:
    body = body.split(b"\x00", 1)[0]
    codecs_to_try = ("iso2022_jp", "shift_jis", "euc_jp") if b"\x1b" in body else ("shift_jis", "euc_jp")
    for codec in codecs_to_try:
        try:
            return body.decode(codec)
        except UnicodeError:
            continue
    return body.decode("latin-1")


def _xp_field(value: Any) -> str:
    """Windows XPComment/XPTitle: UTF-16LE bytes (Pillow may give bytes or a tuple of ints)."""
    if isinstance(value, str):
        return value
    data = bytes(value)
    data = data[: len(data) - len(data) % 2]
    return data.decode("utf-16-le", "replace").split("\x00", 1)[0]


def _utf8_or_latin1(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


# ---- XMP


def _xmp_texts(image: Image.Image) -> Iterator[str]:
    packet = _xmp_packet(image.info)
    if not packet or len(packet) > MAX_XMP_BYTES or b"<!DOCTYPE" in packet or b"<!ENTITY" in packet:
        return  # XMP has no DTD: one is either junk or an entity-expansion attack on older expat versions
    try:
        root = ElementTree.fromstring(packet.rstrip(b"\x00 \t\r\n"))
    except ElementTree.ParseError:
        return
    yield from xmp_property(root, "description")
    yield from xmp_property(root, "title")


def _xmp_packet(info: dict[Any, Any]) -> bytes | None:
    """The raw XMP packet Pillow found: ``info["xmp"]`` (JPEG, PNG, WebP, TIFF), else PNG's text chunks."""
    for key in ("xmp", "XML:com.adobe.xmp"):
        value = info.get(key)
        if isinstance(value, tuple) and len(value) == 1:
            value = value[0]
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
        if isinstance(value, str):
            return value.encode("utf-8")
    raw = info.get("Raw profile type xmp")  # ImageMagick: "\nxmp\n  <length>\n<hex lines>"
    if isinstance(raw, str):
        try:
            return bytes.fromhex("".join(raw.split("\n")[3:]))
        except ValueError:
            return None
    return None


def xmp_property(root: ElementTree.Element, name: str) -> list[str]:
    """The values of Dublin Core property ``name`` (``description``, ``title``, ...) in a parsed XMP tree.

    A language alternative (``rdf:Alt`` of ``rdf:li``) gives every entry, ``x-default`` first; a simple value or
    an attribute of ``rdf:Description`` gives its text.
    """
    tag = _DC + name
    texts: list[str] = []
    for element in root.iter():
        if element.tag == tag:
            texts.extend(_alternatives(element))
        elif element.tag == _RDF + "Description" and element.get(tag):
            texts.append(element.get(tag, ""))
    return texts


def _alternatives(element: ElementTree.Element) -> list[str]:
    entries = list(element.iter(_RDF + "li"))
    if not entries:
        return ["".join(element.itertext())]
    entries.sort(key=lambda li: li.get(_XML_LANG, "").lower() != "x-default")  # stable: x-default first
    return ["".join(li.itertext()) for li in entries]


# ---- IPTC


def _iptc_texts(image: Image.Image) -> Iterator[str]:
    info = IptcImagePlugin.getiptcinfo(image)  # type: ignore[arg-type]  # None for formats without IPTC
    if not info:
        return
    utf8 = _as_list(info.get(_IPTC_CHARSET))[:1] == [b"\x1b%G"]
    for value in _as_list(info.get(_IPTC_CAPTION)):
        yield value.decode("utf-8", "replace") if utf8 else _utf8_or_latin1(value)


def _as_list(value: bytes | list[bytes] | None) -> list[bytes]:
    if value is None:
        return []
    return [bytes(v) for v in value] if isinstance(value, list) else [bytes(value)]
