"""Caption discovery: captions embedded in images (EXIF, XMP, IPTC), sidecar files and caption manifests."""

from __future__ import annotations

import io
import json
import os
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from mmsearch.captions.embedded import clean_caption, decode_user_comment, embedded_captions, is_placeholder
from mmsearch.captions.manifest import CaptionManifest, load_manifest
from mmsearch.captions.sidecar import (
    CAPTION_SIDECAR_SUFFIXES,
    caption_sidecar_names,
    caption_sidecars,
    read_caption_sidecar,
)
from mmsearch.errors import ManifestError, UnreadableMediaError
from mmsearch.kinds import CAPTION
from mmsearch.textitems import TextItem
from tests.conftest import DEV

# ---- helpers: images carrying metadata


def exif_with(
    description: str | bytes | None = None, user_comment: bytes | None = None, xp_comment: str | None = None
) -> Image.Exif:
    exif = Image.Exif()
    if description is not None:
        exif[0x010E] = description
    if user_comment is not None:
        exif.get_ifd(0x8769)[0x9286] = user_comment
    if xp_comment is not None:
        exif[0x9C9C] = xp_comment.encode("utf-16-le") + b"\x00\x00"
    return exif


def xmp_packet(descriptions: dict[str, str], title: str | None = None) -> bytes:
    items = "".join(f'<rdf:li xml:lang="{lang}">{text}</rdf:li>' for lang, text in descriptions.items())
    title_xml = f'<dc:title><rdf:Alt><rdf:li xml:lang="x-default">{title}</rdf:li></rdf:Alt></dc:title>'
    title_xml = title_xml if title else ""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f"<dc:description><rdf:Alt>{items}</rdf:Alt></dc:description>{title_xml}"
        '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode() + b"\x00" * 4


def iptc_segment(caption: bytes, utf8: bool = False) -> bytes:
    """A JPEG APP13 segment: a Photoshop 8BIM resource 0x0404 holding IPTC-IIM 2:120 (Caption/Abstract)."""
    records = b""
    if utf8:
        records += b"\x1c\x01\x5a" + struct.pack(">H", 3) + b"\x1b%G"  # 1:90 coded character set: UTF-8
    records += b"\x1c\x02\x78" + struct.pack(">H", len(caption)) + caption
    resource = b"8BIM" + struct.pack(">H", 0x0404) + b"\x00\x00" + struct.pack(">I", len(records)) + records
    resource += b"\x00" * (len(records) % 2)
    payload = b"Photoshop 3.0\x00" + resource
    return b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload


def jpeg_bytes(exif: Image.Exif | None = None, xmp: bytes | None = None, iptc: bytes | None = None) -> bytes:
    options: dict[str, object] = {}
    if exif is not None:
        options["exif"] = exif
    if xmp is not None:
        options["xmp"] = xmp
    buffer = io.BytesIO()
    Image.new("RGB", (16, 12), (200, 30, 30)).save(buffer, "JPEG", **options)
    data = buffer.getvalue()
    return data[:2] + iptc + data[2:] if iptc is not None else data  # APP13 right after SOI


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def captions_of(path: Path, load: bool = False) -> list[tuple[str, str]]:
    with Image.open(path) as image:
        if load:
            image.load()
        return [(item.source, item.text) for item in embedded_captions(image)]


# ---- embedded: EXIF


@pytest.mark.parametrize("load", [False, True])
def test_exif_description_and_ascii_user_comment(tmp_path: Path, load: bool) -> None:
    exif = exif_with("  A red\n barn   at dusk ", b"ASCII\x00\x00\x00Two horses in a field\x00\x00  ")
    path = write(tmp_path / "a.jpg", jpeg_bytes(exif))
    assert captions_of(path, load) == [("exif", "A red barn at dusk"), ("exif", "Two horses in a field")]
    with Image.open(path) as image:
        assert embedded_captions(image)[0] == TextItem(CAPTION, "exif", "A red barn at dusk")


def test_exif_unicode_user_comment_either_byte_order(tmp_path: Path) -> None:
    for codec in ("utf-16-le", "utf-16-be"):
        comment = b"UNICODE\x00" + "Crème brûlée".encode(codec)
        write(tmp_path / f"{codec}.jpg", jpeg_bytes(exif_with(user_comment=comment)))
    assert captions_of(tmp_path / "utf-16-le.jpg") == [("exif", "Crème brûlée")]
    assert captions_of(tmp_path / "utf-16-be.jpg") == [("exif", "Crème brûlée")]


@pytest.mark.parametrize(
    ("raw", "order", "expected"),
    [
        (b"ASCII\x00\x00\x00A dog", "<", "A dog"),
        (b"UNICODE\x00" + "a cat".encode("utf-16-le"), ">", "a cat"),
        (b"UNICODE\x00" + "a cat".encode("utf-16-be"), "<", "a cat"),
        (b"UNICODE\x00" + "日本の猫".encode("utf-16-be"), ">", "日本の猫"),  # no zero bytes: the EXIF byte order
        (b"UNICODE\x00" + "日本の猫".encode("utf-16-le"), "<", "日本の猫"),
        (b"UNICODE\x00" + "\ufeffa cat".encode("utf-16-be"), "<", "a cat"),  # a byte-order mark wins
        (b"JIS\x00\x00\x00\x00\x00" + "富士山".encode("shift_jis"), "<", "富士山"),
        (b"JIS\x00\x00\x00\x00\x00" + "富士山".encode("iso2022_jp"), "<", "富士山"),
        (b"\x00" * 8 + "café".encode(), "<", "café"),
        (b"\x00" * 8 + "café".encode("latin-1"), "<", "café"),
        (b"ASCII\x00\x00\x00" + b"\x00" * 20, "<", ""),
        (b"just text, no code", "<", "just text, no code"),
        ("already a string\x00junk", "<", "already a string"),
    ],
)
def test_decode_user_comment(raw: bytes | str, order: str, expected: str) -> None:
    assert decode_user_comment(raw, order).strip() == expected


def test_exif_utf8_description_and_windows_xp_comment(tmp_path: Path) -> None:
    exif = exif_with("Café on the corner".encode(), xp_comment="Sunset over Zürich")
    assert captions_of(write(tmp_path / "a.jpg", jpeg_bytes(exif))) == [
        ("exif", "Café on the corner"),
        ("exif", "Sunset over Zürich"),
    ]


@pytest.mark.parametrize("load", [False, True])
def test_tiff_description(tmp_path: Path, load: bool) -> None:
    path = tmp_path / "a.tiff"
    Image.new("RGB", (8, 8)).save(path, exif=exif_with("A lighthouse on a cliff"))
    assert captions_of(path, load) == [("exif", "A lighthouse on a cliff")]


# ---- embedded: XMP


def test_xmp_description_in_jpeg_default_language_first(tmp_path: Path) -> None:
    packet = xmp_packet({"de": "Ein Hund am Strand", "x-default": "A dog on the beach"}, title="Summer holiday")
    path = write(tmp_path / "a.jpg", jpeg_bytes(xmp=packet))
    assert captions_of(path) == [
        ("xmp", "A dog on the beach"),
        ("xmp", "Ein Hund am Strand"),
        ("xmp", "Summer holiday"),
    ]


@pytest.mark.parametrize("load", [False, True])
def test_xmp_in_png_and_webp(tmp_path: Path, load: bool) -> None:
    packet = xmp_packet({"x-default": "Boats in a harbour"})
    png_info = PngInfo()
    png_info.add_itxt("XML:com.adobe.xmp", packet.decode().rstrip("\x00"))
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png", pnginfo=png_info)
    Image.new("RGB", (8, 8)).save(tmp_path / "a.webp", xmp=packet)
    assert captions_of(tmp_path / "a.png", load) == [("xmp", "Boats in a harbour")]
    assert captions_of(tmp_path / "a.webp", load) == [("xmp", "Boats in a harbour")]


def test_xmp_attribute_form_and_imagemagick_png_profile() -> None:
    attribute = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" dc:description="A kite in the sky"/>'
        b"</rdf:RDF></x:xmpmeta>"
    )
    image = Image.new("RGB", (4, 4))
    image.info["xmp"] = attribute
    assert [item.text for item in embedded_captions(image)] == ["A kite in the sky"]
    packet = xmp_packet({"x-default": "Snow on the hills"})
    image = Image.new("RGB", (4, 4))
    image.info["Raw profile type xmp"] = f"\nxmp\n{len(packet):8d}\n{packet.hex()}\n"
    assert [item.text for item in embedded_captions(image)] == ["Snow on the hills"]


def test_malformed_xmp_is_ignored(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jpg", jpeg_bytes(exif_with("A bridge"), xmp=b"<x:xmpmeta><rdf:RDF><oops"))
    assert captions_of(path) == [("exif", "A bridge")]
    entities = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>' + xmp_packet({"x-default": "&a;"})
    image = Image.new("RGB", (4, 4))
    image.info["xmp"] = entities
    assert embedded_captions(image) == []


# ---- embedded: IPTC, placeholders, de-duplication, robustness


@pytest.mark.parametrize("load", [False, True])
def test_iptc_caption(tmp_path: Path, load: bool) -> None:
    utf8 = write(tmp_path / "u.jpg", jpeg_bytes(iptc=iptc_segment("Ölfässer im Hafen".encode(), utf8=True)))
    latin1 = write(tmp_path / "l.jpg", jpeg_bytes(iptc=iptc_segment("Ölfässer im Hafen".encode("latin-1"))))
    assert captions_of(utf8, load) == [("iptc", "Ölfässer im Hafen")]
    assert captions_of(latin1, load) == [("iptc", "Ölfässer im Hafen")]


@pytest.mark.parametrize(
    "text",
    ["OLYMPUS DIGITAL CAMERA         ", "SONY DSC", "dcim", "Default", "Exif_JPEG_PICTURE", "IMG_1234.JPG", "..."],
)
def test_camera_placeholders_are_dropped(tmp_path: Path, text: str) -> None:
    assert is_placeholder(clean_caption(text))
    path = write(tmp_path / "a.jpg", jpeg_bytes(exif_with(text), iptc=iptc_segment(text.encode())))
    assert captions_of(path) == []


def test_identical_texts_are_kept_once_in_source_order(tmp_path: Path) -> None:
    exif = exif_with("A cat asleep on a sofa", b"ASCII\x00\x00\x00A cat  asleep on a sofa")
    packet = xmp_packet({"x-default": "A cat asleep on a sofa", "fr": "Un chat endormi"})
    iptc = iptc_segment(b"A cat asleep on a sofa")
    path = write(tmp_path / "a.jpg", jpeg_bytes(exif, xmp=packet, iptc=iptc))
    assert captions_of(path) == [("exif", "A cat asleep on a sofa"), ("xmp", "Un chat endormi")]


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_no_metadata_and_broken_blocks_never_raise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert captions_of(write(tmp_path / "plain.jpg", jpeg_bytes())) == []
    image = Image.new("RGB", (4, 4))
    image.info.update(exif=b"Exif\x00\x00garbage", xmp=b"\xff\xfe not xml", photoshop={0x0404: b"\x1c\x02"})
    assert embedded_captions(image) == []
    packet = xmp_packet({"x-default": "A river"})
    path = write(tmp_path / "a.jpg", jpeg_bytes(xmp=packet, iptc=iptc_segment(b"A river")))
    with Image.open(path) as opened:
        monkeypatch.setattr(opened, "getexif", lambda: 1 / 0)
        opened.info["exif"] = b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\xff\xff"  # an IFD that runs off the end
        assert [item.source for item in embedded_captions(opened)] == ["xmp"]


def test_pixels_are_not_decoded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    png_info = PngInfo()
    png_info.add_itxt("XML:com.adobe.xmp", xmp_packet({"x-default": "A tram"}).decode().rstrip("\x00"))
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png", pnginfo=png_info)  # no EXIF: PNG getexif() would load()
    with Image.open(tmp_path / "a.png") as image:
        monkeypatch.setattr(image, "load", lambda: pytest.fail("pixels decoded"))
        assert [item.text for item in embedded_captions(image)] == ["A tram"]


def test_clean_caption() -> None:
    assert clean_caption("\ufeff  two\x00 words\t\r\nand\x07more  ") == "two words and more"
    assert clean_caption(" \x00 ") == ""


# ---- sidecars


def test_caption_sidecars_found_by_stem_with_any_suffix_case(tmp_path: Path) -> None:
    names = {"photo.jpg", "photo.TXT", "photo.Caption", "photo.json", "photos.txt", "other.txt", "Photo.txt"}
    image = str(tmp_path / "photo.jpg")
    expected = [str(tmp_path / "photo.Caption"), str(tmp_path / "photo.TXT")]
    assert caption_sidecars(image, names) == expected
    assert caption_sidecars(image, sorted(names)) == expected  # a list is scanned
    assert caption_sidecars(str(tmp_path / "my.photo.png"), {"my.photo.png", "my.photo.txt", "my.txt"}) == [
        str(tmp_path / "my.photo.txt")
    ]
    assert caption_sidecars(image, {"photo.jpg"}) == []
    assert CAPTION_SIDECAR_SUFFIXES == (".txt", ".caption")


_NAME = st.builds(
    lambda stem, suffix: stem + suffix,
    st.sampled_from(["photo", "Photo", "my.photo", "my", "a.b.c"]),  # hidden names (".txt") never reach it
    st.sampled_from([".jpg", ".png", ".txt", ".TXT", ".Txt", ".caption", ".CAPTION", ".json", "", ".txt.bak"]),
)


@given(st.sets(_NAME, max_size=12))
@settings(max_examples=200, deadline=None)
def test_sidecars_by_stem_answer_as_caption_sidecars(names: set[str]) -> None:
    """The scanner's per-folder table (one lookup per image) finds exactly what caption_sidecars finds."""
    by_stem = caption_sidecar_names(names)
    for name in names:
        stem = os.path.splitext(name)[0]
        table = [os.path.join("/f", other) for other in by_stem.get(stem, ()) if other != name]
        assert table == caption_sidecars(os.path.join("/f", name), names)


def test_read_sidecar_one_caption_per_line(tmp_path: Path) -> None:
    path = tmp_path / "photo.txt"
    path.write_bytes(b"\xef\xbb\xbfA dog   on a beach\r\n\r\n  \n\tTwo  dogs playing\nA dog on a beach\n")
    assert read_caption_sidecar(str(path)) == [
        TextItem(CAPTION, "sidecar", "A dog on a beach", origin=str(path)),
        TextItem(CAPTION, "sidecar", "Two dogs playing", origin=str(path)),
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("Café… au lait".encode("latin-1", "replace"), ["Café? au lait"]),
        ("Crème\x85brûlée".encode("latin-1"), ["Crème brûlée"]),  # U+0085 is whitespace, not a line break
        ("\ufeffÜber den Wolken\nZweite Zeile".encode("utf-16"), ["Über den Wolken", "Zweite Zeile"]),
        ("Straße".encode(), ["Straße"]),
        (b"", []),
    ],
)
def test_read_sidecar_encodings(tmp_path: Path, data: bytes, expected: list[str]) -> None:
    path = write(tmp_path / "photo.caption", data)
    assert [item.text for item in read_caption_sidecar(str(path))] == expected


def test_read_sidecar_too_large_or_missing(tmp_path: Path) -> None:
    big = write(tmp_path / "big.txt", b"a caption\n" * 110_000)
    with pytest.raises(UnreadableMediaError, match="over the 1 MiB limit"):
        read_caption_sidecar(str(big))
    with pytest.raises(UnreadableMediaError, match="cannot read caption sidecar"):
        read_caption_sidecar(str(tmp_path / "missing.txt"))
    with pytest.raises(UnreadableMediaError):
        read_caption_sidecar(str(tmp_path))


# ---- manifests: formats


def texts(manifest: CaptionManifest, image: Path | str) -> list[str]:
    return [item.text for item in manifest.captions_for(str(image))]


def test_tsv_with_header_extra_columns_and_repeats(tmp_path: Path) -> None:
    path = tmp_path / "captions.tsv"
    path.write_text(
        "Image\tn\tCaption\n"
        "a.jpg\t0\tA dog runs .\n"
        "a.jpg\t1\tA dog  runs .\n"
        "\n"
        'b.jpg\t0\t"He said ""hi"""\n'
        "a.jpg\t2\tThe dog is fast\n"
    )
    manifest = load_manifest(path)
    assert len(manifest) == 2 and manifest.keys == ("a.jpg", "b.jpg")
    assert manifest.path == str(path.resolve())
    assert texts(manifest, tmp_path / "a.jpg") == ["A dog runs .", "The dog is fast"]
    assert texts(manifest, tmp_path / "b.jpg") == ['He said "hi"']
    item = manifest.captions_for(str(tmp_path / "b.jpg"))[0]
    assert (item.kind, item.source, item.origin) == (CAPTION, "manifest", manifest.path)


def test_headerless_tsv_first_column_path_last_caption(tmp_path: Path) -> None:
    path = write(tmp_path / "c.tsv", b'a.jpg\t0\tA "quoted" word\nb.jpg\tA bird\n')
    manifest = load_manifest(path)
    assert texts(manifest, tmp_path / "a.jpg") == ['A "quoted" word']
    assert texts(manifest, tmp_path / "b.jpg") == ["A bird"]


def test_csv_with_quotes_and_commas(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text('id,File_Name,TEXT\n1,a.jpg,"A dog, a cat and a ""bird"""\n2,b.jpg,plain, unquoted comma\n')
    manifest = load_manifest(path)
    assert texts(manifest, tmp_path / "a.jpg") == ['A dog, a cat and a "bird"']
    assert texts(manifest, tmp_path / "b.jpg") == ["plain, unquoted comma"]


def test_jsonl_with_captions_list_and_single_caption(tmp_path: Path) -> None:
    lines = [
        {"image": "a.jpg", "captions": ["One", "Two", "One"]},
        {"path": "b.jpg", "caption": "Three"},
        {"file_name": "a.jpg", "text": "Four"},
    ]
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    manifest = load_manifest(path)
    assert texts(manifest, tmp_path / "a.jpg") == ["One", "Two", "Four"]
    assert texts(manifest, tmp_path / "b.jpg") == ["Three"]


def test_coco_json(tmp_path: Path) -> None:
    document = {
        "info": {},
        "images": [{"id": 1, "file_name": "a.jpg", "width": 4}, {"id": 2, "file_name": "b.jpg"}],
        "annotations": [
            {"id": 9, "image_id": 2, "caption": "A bus"},
            {"id": 10, "image_id": 1, "caption": "A train"},
            {"id": 11, "image_id": 2, "caption": "A red bus"},
        ],
    }
    path = tmp_path / "captions_val.json"
    path.write_text(json.dumps(document))
    manifest = load_manifest(path)
    assert len(manifest) == 2
    assert texts(manifest, tmp_path / "b.jpg") == ["A bus", "A red bus"]
    assert texts(manifest, tmp_path / "a.jpg") == ["A train"]


def test_plain_json_object_and_list(tmp_path: Path) -> None:
    mapping = write(tmp_path / "m.json", json.dumps({"a.jpg": "A fox", "b.jpg": ["A hen", "A coop"]}).encode())
    manifest = load_manifest(mapping)
    assert texts(manifest, tmp_path / "b.jpg") == ["A hen", "A coop"]
    records = write(tmp_path / "r.json", json.dumps([{"image": "a.jpg", "caption": "A fox"}]).encode())
    assert texts(load_manifest(records), tmp_path / "a.jpg") == ["A fox"]


# ---- manifests: key resolution


def test_relative_keys_resolve_from_manifest_folder_and_from_base(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    meta = tmp_path / "meta"
    meta.mkdir()
    path = meta / "c.tsv"
    path.write_text("image\tcaption\nsub/x.jpg\tfrom base\n../photos/y.jpg\tfrom the manifest folder\n./z.jpg\tnext\n")
    without_base = load_manifest(path)
    assert texts(without_base, photos / "sub" / "x.jpg") == []
    assert texts(without_base, photos / "y.jpg") == ["from the manifest folder"]
    assert texts(without_base, meta / "z.jpg") == ["next"]
    manifest = load_manifest(path, base=str(photos))
    assert texts(manifest, photos / "sub" / "x.jpg") == ["from base"]
    assert texts(manifest, photos / "y.jpg") == ["from the manifest folder"]
    assert texts(manifest, photos / "x.jpg") == []  # "sub/x.jpg" has a folder: no basename match
    assert manifest.unmatched([str(photos / "sub" / "x.jpg"), str(photos / "y.jpg")]) == ["./z.jpg"]


def test_absolute_keys_and_symlinked_folders(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    path = tmp_path / "c.jsonl"
    path.write_text(
        json.dumps({"image": str(real / "a.jpg"), "caption": "absolute"})
        + "\n"
        + json.dumps({"image": str(tmp_path / "link" / "b.jpg"), "caption": "through a link"})
        + "\n"
    )
    manifest = load_manifest(path)
    assert texts(manifest, real / "a.jpg") == ["absolute"]
    assert texts(manifest, tmp_path / "elsewhere" / "a.jpg") == []  # absolute: no basename match
    assert texts(manifest, real / "b.jpg") == ["through a link"]


def test_bare_names_match_by_basename_only_when_unique(tmp_path: Path) -> None:
    path = tmp_path / "meta" / "c.tsv"
    path.parent.mkdir()
    path.write_text("a.jpg\tbare a\nb.jpg\tbare b\nother/b.jpg\tnested b\n")
    manifest = load_manifest(path, base=str(tmp_path / "photos"))
    assert texts(manifest, tmp_path / "photos" / "deep" / "er" / "a.jpg") == ["bare a"]
    assert texts(manifest, "/anywhere/a.jpg") == ["bare a"]
    assert texts(manifest, tmp_path / "photos" / "deep" / "b.jpg") == []  # "b.jpg" is ambiguous
    assert texts(manifest, tmp_path / "photos" / "b.jpg") == ["bare b"]  # ... but still resolves from base
    assert texts(manifest, tmp_path / "photos" / "other" / "b.jpg") == ["nested b"]
    assert manifest.unmatched(["/x/a.jpg"]) == ["b.jpg", "other/b.jpg"]


def test_keys_naming_the_same_image_are_merged(tmp_path: Path) -> None:
    path = tmp_path / "c.tsv"
    path.write_text(f"a.jpg\tone\n{tmp_path / 'a.jpg'}\ttwo\n./a.jpg\tone\n")
    manifest = load_manifest(path)
    assert len(manifest) == 3
    assert texts(manifest, tmp_path / "a.jpg") == ["one", "two"]
    assert manifest.unmatched([str(tmp_path / "a.jpg")]) == []


def test_empty_manifest_is_still_true(tmp_path: Path) -> None:
    manifest = load_manifest(write(tmp_path / "c.tsv", b"image\tcaption\n"))
    assert len(manifest) == 0 and manifest
    assert manifest.captions_for(str(tmp_path / "a.jpg")) == []


# ---- manifests: errors


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("captions.tsv", "image\tn\tcaption\na.jpg\t0\tok\n\na.jpg\t1\n", "captions.tsv line 4: no caption column"),
        ("captions.tsv", "a.jpg\tok\nb.jpg\n", "captions.tsv line 2: no caption column"),
        ("captions.tsv", "image\tsentence\na.jpg\tok\n", "captions.tsv line 1: the header names no caption column"),
        ("captions.tsv", "url\tcaption\na.jpg\tok\n", "captions.tsv line 1: the header names no image column"),
        ("captions.csv", "image,caption\n,empty path\n", "captions.csv line 2: empty image path"),
        ("captions.csv", 'image,caption\na.jpg,"ok"\nb.jpg,"never\nclosed\n', "captions.csv line 3: malformed CSV"),
        ("c.jsonl", '{"image": "a.jpg", "caption": "x"}\n{"image": "b.jpg",\n', "c.jsonl line 2: invalid JSON"),
        ("c.jsonl", '\n["a.jpg", "x"]\n', "c.jsonl line 2: expected a JSON object"),
        ("c.jsonl", '{"image": "a.jpg"}\n', "c.jsonl line 1: no caption key"),
        ("c.jsonl", '{"caption": "x"}\n', "c.jsonl line 1: no image key"),
        ("c.jsonl", '{"image": "a.jpg", "captions": ["x", 3]}\n', "c.jsonl line 1: captions must be a string"),
        ("c.json", '{\n  "a.jpg": "x",\n  "b.jpg": \n}\n', "c.json line 4: invalid JSON"),
        ("c.json", '{"a.jpg": {"nested": 1}}', "c.json key 'a.jpg': captions must be"),
        ("c.json", '{"images": [{"id": 1}], "annotations": []}', "c.json images[0]: no file_name"),
        (
            "c.json",
            '{"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [{"image_id": 2, "caption": "x"}]}',
            "c.json annotations[0]: unknown image_id 2",
        ),
        ("c.json", "42", "c.json top level: expected"),
        ("c.xml", "<a/>", "unknown format '.xml'"),
    ],
)
def test_malformed_manifests_name_file_and_line(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"caption manifest .*nope\.tsv not found"):
        load_manifest(tmp_path / "nope.tsv")
    (tmp_path / "dir.tsv").mkdir()
    with pytest.raises(ManifestError, match="folder"):
        load_manifest(tmp_path / "dir.tsv")


# ---- manifests: round trip and the real Flickr8k DEV captions

_caption_text = st.text(
    st.characters(codec="utf-8", exclude_categories=("C", "Z"), exclude_characters='"'), min_size=1, max_size=12
)
_captions = st.lists(st.lists(_caption_text, min_size=1, max_size=4).map(" ".join), min_size=1, max_size=4)
_names = st.from_regex(r"[a-z0-9_]{1,10}\.jpg", fullmatch=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.dictionaries(_names, _captions, min_size=1, max_size=8), fmt=st.sampled_from(["tsv", "jsonl", "csv"]))
def test_manifest_round_trip(tmp_path: Path, data: dict[str, list[str]], fmt: str) -> None:
    path = tmp_path / f"round.{fmt}"
    if fmt == "jsonl":
        path.write_text("\n".join(json.dumps({"image": k, "captions": v}) for k, v in data.items()))
    else:
        sep = "\t" if fmt == "tsv" else ","
        rows = [f"image{sep}caption"]
        for key, captions in data.items():
            rows += [f"{key}{sep}{caption}" if fmt == "tsv" else f'{key},"{caption}"' for caption in captions]
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    manifest = load_manifest(path, base=str(tmp_path / "photos"))
    assert len(manifest) == len(data)
    for key, captions in data.items():
        expected = list(dict.fromkeys(clean_caption(c) for c in captions))
        assert texts(manifest, tmp_path / "photos" / key) == expected
        assert texts(manifest, tmp_path / "deep" / "folder" / key) == expected
    assert manifest.unmatched(str(tmp_path / key) for key in data) == []


def test_flickr8k_dev_captions_resolve_by_basename() -> None:
    captions_tsv = DEV / "captions.tsv"
    if not captions_tsv.is_file() or not (DEV / "images").is_dir():
        pytest.skip(f"Flickr8k DEV captions not found under {DEV}")
    images = sorted(str(DEV / "images" / name) for name in os.listdir(DEV / "images") if name.endswith(".jpg"))
    manifest = load_manifest(captions_tsv, base=str(DEV / "images"))
    assert len(manifest) == 300 and len(images) == 300
    assert all(len(manifest.captions_for(image)) == 5 for image in images)
    moved = [f"/moved/elsewhere/{os.path.basename(image)}" for image in images]  # bare names match anywhere
    assert sum(len(manifest.captions_for(image)) for image in moved) == 1500
    assert manifest.unmatched(images) == []
    first = manifest.captions_for(images[0])[0]
    assert first.source == "manifest" and first.origin == str(captions_tsv.resolve())
