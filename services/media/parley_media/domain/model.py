"""The media record's states and the identifiers media derives."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta
from enum import StrEnum


class MediaState(StrEnum):
    PENDING = "pending"  # metadata written, bytes not (yet) stored
    STORED = "stored"
    FAILED = "failed"
    EXPIRING = "expiring"  # a sweeper holds it; the blob may be half-released
    EXPIRED = "expired"  # tombstone: metadata kept, bytes gone


def inbound_media_id(key: bytes, tenant_id: str, channel_id: str, attachment_id: str) -> str:
    """Deterministic, so a redelivered message or a retry lands on the same record (idempotency); keyed
    (HMAC with the service's id secret), so knowing a provider's attachment id does not tell the media id."""
    fields = (tenant_id, channel_id, attachment_id)
    payload = b"".join(f"{len(field)}:{field};".encode() for field in fields)  # no two tuples share a payload
    return f"m_{hmac.new(key, payload, hashlib.sha256).hexdigest()[:32]}"


def blob_ref_id(tenant_id: str, sha256: str) -> str:
    """One blob per (tenant, content): never shared across tenants."""
    return f"{tenant_id}|{sha256}"


def expires_at(received_at: datetime, retention_days: float) -> datetime:
    return received_at + timedelta(days=retention_days)
