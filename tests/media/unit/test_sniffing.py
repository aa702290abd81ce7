"""The real type comes from the bytes, never from the declared mime type."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from parley_media.domain.sniffing import OCTET_STREAM, kind_of, sniff


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(out, "PNG")
    return out.getvalue()


def test_a_png_declared_as_jpeg_is_a_png() -> None:
    assert sniff(png_bytes(), "image/jpeg") == "image/png"


def test_an_executable_declared_as_an_image_is_an_executable() -> None:
    assert sniff(b"MZ\x90\x00" + b"\x00" * 60, "image/png") == "application/x-msdownload"
    assert sniff(b"\x7fELF\x02\x01\x01" + b"\x00" * 40, "image/jpeg") == "application/x-executable"


def test_pdf_is_recognised() -> None:
    assert sniff(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", None) == "application/pdf"


def test_text_keeps_a_declared_text_subtype_only() -> None:
    assert sniff(b"a,b\n1,2\n", "text/csv") == "text/csv"
    assert sniff(b"plain words", "text/html") == "text/plain"


@given(st.text(min_size=1, max_size=200).filter(lambda text: "\x00" not in text))
def test_any_nul_free_utf8_text_is_text(text: str) -> None:
    data = text.encode()
    if data[:2] == b"MZ" or data[:4] == b"\x7fELF":
        return
    assert sniff(data, None) in {"text/plain"} or not sniff(data, None).startswith("application/x-")


@given(st.binary(min_size=1, max_size=64))
def test_sniff_always_answers_a_mime_type(data: bytes) -> None:
    mime = sniff(data, "image/png")
    assert "/" in mime


def test_random_binary_is_octet_stream() -> None:
    assert sniff(b"\x00\x01\x02\xff\xfe", None) == OCTET_STREAM


def test_kinds() -> None:
    assert [kind_of(m) for m in ("image/png", "audio/ogg", "video/mp4", "application/pdf")] == [
        "image", "audio", "video", "document"]
