"""HTTP Range requests (RFC 9110 §14): one byte range; several ranges are served whole."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class Unsatisfiable(Exception):
    """The range lies outside the content: answer 416."""


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """None means "send everything" (no header, a malformed header, or several ranges)."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header.removeprefix("bytes=").strip().partition("-")
    try:
        if first == "":
            suffix = int(last)
            if suffix <= 0:
                raise Unsatisfiable
            return ByteRange(max(0, size - suffix), size - 1)
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        raise Unsatisfiable
    return ByteRange(start, min(end, size - 1))
