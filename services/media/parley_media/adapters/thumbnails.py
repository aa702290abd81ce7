"""Image thumbnails (Pillow): a small JPEG for the timeline, never the original's full decode when avoidable."""

from __future__ import annotations

import io
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

THUMBNAIL_SIZE = (320, 320)
THUMBNAIL_MIME = "image/jpeg"
# Decompression bombs: refuse to thumbnail images larger than this many pixels (the original is still kept).
Image.MAX_IMAGE_PIXELS = 64_000_000


def make_thumbnail(source: BinaryIO) -> bytes | None:
    """A JPEG no larger than THUMBNAIL_SIZE, or None when the bytes are not an image Pillow can read."""
    source.seek(0)
    try:
        with Image.open(source) as image:
            image.draft("RGB", THUMBNAIL_SIZE)  # JPEG: decode at a reduced scale, much faster
            image.thumbnail(THUMBNAIL_SIZE)
            rgb = image.convert("RGB")
            out = io.BytesIO()
            rgb.save(out, "JPEG", quality=80)
            return out.getvalue()
    # Pillow reports some truncated or corrupt files (e.g. a PNG with a broken chunk) as SyntaxError.
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
