"""Comparing what a caller sent with a secret or a signature we computed."""

from __future__ import annotations

import hmac


def same_secret(expected: str, given: str) -> bool:
    """Constant-time, on bytes: hmac.compare_digest raises TypeError for a str holding a non-ASCII character, and
    a header or a query parameter may carry any (a 500 where a 401/403 belongs)."""
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogatepass"))
