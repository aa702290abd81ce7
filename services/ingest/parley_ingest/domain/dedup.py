"""De-duplication keys: (tenant, channel, kind, provider id), namespaced, bounded in length."""

from __future__ import annotations

import hashlib


def dedup_key(prefix: str, tenant_id: str, channel_id: str, kind: str, provider_id: str) -> str:
    """Tenant and channel ids cannot contain ':' (channel file pattern), kind is ours; the provider id is
    hashed so an attacker-sized or ':'-containing id cannot collide with another key or bloat Redis."""
    digest = hashlib.sha256(provider_id.encode()).hexdigest()
    return f"{prefix}ingest:dedup:{tenant_id}:{channel_id}:{kind}:{digest}"
