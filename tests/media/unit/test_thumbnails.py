import io

from parley_media.adapters.thumbnails import make_thumbnail

# A 1x1 PNG whose IDAT chunk has a wrong CRC: Pillow raises SyntaxError for it, not OSError.
BROKEN_PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4"
              b"\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7V\xbd\xfa\x00\x00\x00\x00IEND"
              b"\xaeB`\x82")


def test_a_corrupt_image_gets_no_thumbnail_instead_of_an_error() -> None:
    assert make_thumbnail(io.BytesIO(BROKEN_PNG)) is None


def test_bytes_that_are_no_image_get_no_thumbnail() -> None:
    assert make_thumbnail(io.BytesIO(b"plain text, not an image")) is None
