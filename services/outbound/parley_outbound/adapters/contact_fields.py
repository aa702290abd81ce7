"""Redis: the contacts' custom fields and which contact each channel identity belongs to, kept from
parley.contacts.events.v1, so a saved reply renders `{{membership}}` without calling contacts.

Every write is a set (field value, identity -> contact), so a redelivered event changes nothing. A merge copies
the merged contact's fields under the surviving one where it has none (contacts keeps the survivor's values).

Redis is a cache: after a restart with nothing kept these are restored from outbound's own MongoDB audience
(handlers/projection_rebuild.py) — not from the topic, whose 30 days would forget an older contact — and until then
`fields_of` raises ProjectionsRebuilding rather than render a saved reply with its fields blank."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from parley_common.ids import ConversationKey
from parley_outbound.adapters.projection_marker import READY, ProjectionMarker, ProjectionsRebuilding

# KEYS[1] the survivor's fields, KEYS[2] the merged contact's fields: copy what the survivor lacks, drop the rest.
_MERGE = """
local values = redis.call('HGETALL', KEYS[2])
for i = 1, #values, 2 do redis.call('HSETNX', KEYS[1], values[i], values[i + 1]) end
redis.call('DEL', KEYS[2])
return 1
"""


class ContactFieldsStore:
    def __init__(self, redis: Redis, prefix: str, on_lost: Callable[[], None] | None = None) -> None:
        self._redis = redis
        self._on_lost = on_lost
        self._prefix = prefix
        self._marker = ProjectionMarker(redis, prefix).key

    def _fields(self, tenant_id: str, contact_id: str) -> str:
        return f"{self._prefix}outbound:fields:{tenant_id}:{contact_id}"

    def _owner(self, key: ConversationKey) -> str:
        return f"{self._prefix}outbound:contact-of:{key}"

    # The writes of a consumer batch go onto one pipeline (one round trip), in the batch's order.
    def link(self, pipeline: Pipeline, contact_id: str, identities: Iterable[ConversationKey]) -> None:
        keys = list(identities)
        if keys:
            pipeline.mset({self._owner(key): contact_id for key in keys})

    def update(self, pipeline: Pipeline, tenant_id: str, contact_id: str, changes: Mapping[str, str | None]) -> None:
        """Set and removed fields, one after the other (a saved reply rendered between the two sees the new
        values and a field about to go: no harm, the next render is whole)."""
        key = self._fields(tenant_id, contact_id)
        present: dict[Any, Any] = {name: value for name, value in changes.items() if value is not None}
        removed = [name for name, value in changes.items() if value is None]
        if present:
            pipeline.hset(key, mapping=present)
        if removed:
            pipeline.hdel(key, *removed)

    def merge(self, pipeline: Pipeline, tenant_id: str, survivor_id: str, merged_id: str) -> None:
        """EVAL, not the registered script: in a pipeline that would ask SCRIPT EXISTS first (a round trip)."""
        pipeline.eval(_MERGE, 2, self._fields(tenant_id, survivor_id), self._fields(tenant_id, merged_id))

    def restore(self, pipeline: Pipeline, tenant_id: str, contact_id: str, fields: Mapping[str, str],
                identities: Iterable[ConversationKey]) -> None:
        """Onto a rebuild's pipeline: what the database keeps, where no event wrote since the cache lost it (those
        are newer)."""
        for name, value in fields.items():
            pipeline.hsetnx(self._fields(tenant_id, contact_id), name, value)
        for key in identities:
            pipeline.set(self._owner(key), contact_id, nx=True)

    async def fields_of(self, key: ConversationKey) -> dict[str, str]:
        """The custom fields of the contact behind this identity (empty when contacts never told us of it);
        ProjectionsRebuilding when the cache lost them (the marker is read with the owner: no round trip more)."""
        contact_id, marker = await self._redis.mget(self._owner(key), self._marker)
        if marker != READY:
            if self._on_lost is not None:
                self._on_lost()
            raise ProjectionsRebuilding
        if not contact_id:
            return {}
        raw = await self._redis.hgetall(self._fields(key.tenant_id, str(contact_id)))
        return {str(name): str(value) for name, value in raw.items()}
