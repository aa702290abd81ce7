"""Short-lived download links: HMAC-SHA256 over (tenant, media id, variant, expiry). Links are signed with the
current key and accepted under any key still listed, so a key is rotated without breaking links in flight."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from parley_common.digests import same_secret


class Variant(StrEnum):
    ORIGINAL = "original"
    THUMBNAIL = "thumbnail"


class SignatureProblem(StrEnum):
    INVALID = "invalid_signature"
    EXPIRED = "signature_expired"


@dataclass(frozen=True)
class SignedLink:
    tenant_id: str
    media_id: str
    variant: Variant
    expires: int  # unix seconds
    signature: str


def _payload(tenant_id: str, media_id: str, variant: Variant, expires: int) -> bytes:
    # Length-prefixed fields: no two different tuples share a payload.
    fields = (tenant_id, media_id, variant.value, str(expires))
    return b"".join(f"{len(field)}:{field};".encode() for field in fields)


def sign(secret: bytes, tenant_id: str, media_id: str, variant: Variant, expires: int) -> SignedLink:
    digest = hmac.new(secret, _payload(tenant_id, media_id, variant, expires), hashlib.sha256).hexdigest()
    return SignedLink(tenant_id, media_id, variant, expires, digest)


def verify(secrets: Sequence[bytes], link: SignedLink, now: int) -> SignatureProblem | None:
    """None when the link is genuine under one of `secrets` (the current key first, then those still accepted)
    and not yet expired. The signature is checked first, so a forged link learns nothing from the expiry answer."""
    expected = (sign(secret, link.tenant_id, link.media_id, link.variant, link.expires).signature
                for secret in secrets)
    if not any(same_secret(signature, link.signature) for signature in expected):
        return SignatureProblem.INVALID
    if now >= link.expires:
        return SignatureProblem.EXPIRED
    return None
