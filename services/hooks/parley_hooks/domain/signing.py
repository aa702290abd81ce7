"""The signature of a delivery: HMAC-SHA256, keyed with the subscription's secret, of `<timestamp>.<body>`
(the timestamp in Unix seconds, as sent in its header), hex-encoded and sent as `v1=<hex>`; for a while after the
secret changed, a second one with the previous secret follows, comma-separated.

The receiver recomputes it over the raw body it got, compares in constant time, and refuses a timestamp too far
from its clock (a replayed capture): docs/webhooks.md shows how."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "Parley-Signature"
TIMESTAMP_HEADER = "Parley-Timestamp"
DELIVERY_HEADER = "Parley-Delivery-Id"
ATTEMPT_HEADER = "Parley-Delivery-Attempt"
SCHEME = "v1"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"{SCHEME}={digest}"


def verify(secret: str, timestamp: str, body: bytes, header: str, now: int, tolerance_s: int = 300) -> bool:
    """What a receiver does (in Python): the signature matches and the timestamp is recent."""
    if not timestamp.isdigit() or abs(now - int(timestamp)) > tolerance_s:
        return False
    expected = signature(secret, int(timestamp), body)
    return any(hmac.compare_digest(expected, given.strip()) for given in header.split(","))
