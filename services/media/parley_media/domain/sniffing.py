"""The real type of a file, from its first bytes; the declared mime type only breaks ties for text."""

from __future__ import annotations

import filetype

SNIFF_BYTES = 8192
OCTET_STREAM = "application/octet-stream"
_TEXT_TYPES = frozenset({"text/plain", "text/csv", "text/calendar", "text/vcard", "text/x-vcard", "application/json"})
_ELF = b"\x7fELF"
_MZ = b"MZ"
_MACH_O = (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe")


def sniff(head: bytes, declared: str | None) -> str:
    """`head` is the first SNIFF_BYTES (or fewer) of the content."""
    binary = _executable(head)
    if binary:
        return binary
    kind = filetype.guess(head)
    if kind is not None:
        return str(kind.mime)
    if _looks_like_text(head):
        declared_base = (declared or "").split(";", 1)[0].strip().lower()
        return declared_base if declared_base in _TEXT_TYPES else "text/plain"
    return OCTET_STREAM


def _executable(head: bytes) -> str | None:
    if head.startswith(_ELF):
        return "application/x-executable"
    if head.startswith(_MZ):
        return "application/x-msdownload"
    if head[:4] in _MACH_O:
        return "application/x-mach-binary"
    return None


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sniffed window is still text.
        return exc.start >= len(head) - 3
    return True


def kind_of(mime: str) -> str:
    """The broad kind a timeline shows: image, audio, video or document."""
    major = mime.split("/", 1)[0]
    return major if major in {"image", "audio", "video"} else "document"
