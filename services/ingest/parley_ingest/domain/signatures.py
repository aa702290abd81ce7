"""Webhook authenticity checks, all on the exact raw body bytes and all constant-time."""

from __future__ import annotations

import hashlib
import hmac

from parley_common.digests import same_secret

META_PREFIX = "sha256="


def hmac_sha256_hex(key: str, body: bytes) -> str:
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def meta_signature_ok(app_secret: str, body: bytes, header: str | None) -> bool:
    """X-Hub-Signature-256: 'sha256=' + hex HMAC-SHA256(app secret, raw body)."""
    if not header or not header.startswith(META_PREFIX):
        return False
    return same_secret(hmac_sha256_hex(app_secret, body), header[len(META_PREFIX):].strip().lower())


def hex_signature_ok(key: str, body: bytes, header: str | None) -> bool:
    """Viber's X-Viber-Content-Signature: bare hex HMAC-SHA256(auth token, raw body)."""
    if not header:
        return False
    return same_secret(hmac_sha256_hex(key, body), header.strip().lower())


def secret_matches(expected: str, given: str | None) -> bool:
    """A shared secret sent as-is (Telegram's secret header, Meta's verify token)."""
    if given is None:
        return False
    return same_secret(expected, given)


def bearer_matches(expected: str, authorization: str | None) -> bool:
    if not authorization or not authorization.lower().startswith("bearer "):
        return False
    return secret_matches(expected, authorization[len("bearer "):].strip())
