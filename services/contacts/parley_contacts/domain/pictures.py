"""Which pictures contacts fetches for the console, and what it accepts as one: pure rules, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_PICTURE_BYTES = 1024 * 1024  # platforms' profile pictures are tens of KB; a bigger answer is not one
# The first bytes of the formats a browser shows as an <img> without running anything (no SVG: it is a document).
SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def image_type(head: bytes) -> str | None:
    """The picture's type by its content (never by what the server claimed), or None when it is not one."""
    for signature, media_type in SIGNATURES:
        if head.startswith(signature):
            return media_type
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def from_platform(card: Mapping[str, Any]) -> bool:
    """Whether the card's picture came from the platform (Viber's webhook, Meta's Graph API) rather than from an
    agent's edit, which marks it (cards written before the mark have only platform pictures)."""
    return card.get("avatar_from_platform") is not False


def fetchable_picture(card: Mapping[str, Any]) -> str | None:
    """The card's picture URL when it came from the platform: contacts fetches only those. A URL an agent typed is
    never fetched by the server: it could name an address inside the deployment (server-side request forgery)."""
    url = card.get("avatar_url")
    return url if isinstance(url, str) and from_platform(card) else None
