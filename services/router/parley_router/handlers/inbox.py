"""Inbox queries: who may see what, filters, tabs, cursor pagination (keyset on the sort field and id)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field

from parley_common.auth import Principal
from parley_common.errors import ApiError
from parley_common.visibility import Owner, may_see, sees_whole_tenant
from parley_router.domain.conversation import Conversation, Status
from parley_router.domain.timeline import Entry, EntryKind

Doc = dict[str, Any]
T = TypeVar("T")
SortKey = Literal["last_activity", "waiting"]


class InboxFilter(BaseModel):
    status: Status | None = None
    assignee: str | None = None
    team: str | None = None
    channel_type: str | None = None
    channel_id: str | None = None
    label: str | None = None
    unanswered: bool | None = None
    archived: bool = False
    blocked: bool = False
    brand: str | None = Field(default=None, description="the tenant's company/brand (channels per router config)")
    q: str | None = Field(default=None, min_length=2, max_length=100,
                          description="search: phone, name or user id of the customer")


def scope(principal: Principal, agent_teams: frozenset[str]) -> Doc:
    """The visibility rule (parley_common.visibility) as a query: the whole tenant, or an agent's teams' and
    their own conversations."""
    query: Doc = {"tenant_id": principal.tenant_id}
    if not sees_whole_tenant(principal):
        query["$or"] = [{"team_id": {"$in": sorted(agent_teams)}}, {"assignee_agent": principal.login}]
    return query


def can_see(principal: Principal, agent_teams: frozenset[str], conv: Conversation) -> bool:
    return may_see(principal, agent_teams, Owner(conv.team_id, conv.agent))


def search_query(text: str, identities: list[str]) -> Doc:
    """Conversations whose customer matches `text` directly, or whose identity belongs to a matching contact."""
    pattern = {"$regex": re.escape(text), "$options": "i"}
    matches: list[Doc] = [{"external_user_id": text}, {"customer_phone": text}, {"customer_name": pattern}]
    for identity in identities:
        channel_id, _, user = identity.partition("|")
        matches.append({"channel_id": channel_id, "external_user_id": user})
    return {"$or": matches}


def filter_query(base: Doc, wanted: InboxFilter, identities: list[str] | None = None,
                 brands: Mapping[str, str] | None = None) -> Doc:
    query = dict(base)
    if wanted.q:
        query = {"$and": [base, search_query(wanted.q, identities or [])]}
    query["archived"] = wanted.archived
    query["blocked"] = wanted.blocked
    simple = {"status": wanted.status.value if wanted.status else None, "assignee_agent": wanted.assignee,
              "team_id": wanted.team, "channel_type": wanted.channel_type, "channel_id": wanted.channel_id,
              "labels": wanted.label, "unanswered": wanted.unanswered}
    query.update({field: value for field, value in simple.items() if value is not None})
    if wanted.brand is not None:
        query["channel_id"] = {"$in": brand_channels(brands or {}, wanted.brand, wanted.channel_id)}
    return query


def brand_channels(brands: Mapping[str, str], brand: str, channel_id: str | None = None) -> list[str]:
    """The channels of `brand` (narrowed to `channel_id` when that filter is given too); none → matches nothing."""
    found = sorted(channel for channel, name in brands.items() if name == brand)
    return [channel for channel in found if channel_id is None or channel == channel_id]


SORTS: dict[str, tuple[str, int]] = {"last_activity": ("last_activity_at", -1), "waiting": ("waiting_since", 1)}


def page_query(query: Doc, sort: SortKey, cursor: str | None) -> tuple[Doc, list[tuple[str, int]]]:
    field, direction = SORTS[sort]
    order = [(field, direction), ("_id", direction)]
    if sort == "waiting":
        query = {**query, field: {"$ne": None}}
    if cursor is None:
        return query, order
    value, last_id = decode_cursor(cursor)
    op = "$lt" if direction < 0 else "$gt"
    after = {"$or": [{field: {op: value}}, {field: value, "_id": {op: last_id}}]}
    return {"$and": [query, after]}, order


def encode_cursor(conv: Conversation, sort: SortKey) -> str:
    return encode_position(conv.last_activity_at if sort == "last_activity" else conv.waiting_since, conv.id)


def encode_position(value: datetime | None, conversation_id: str) -> str:
    """An opaque cursor: the sort value and id of a page's last item (`decode_cursor` reads it)."""
    return _opaque({"v": value.isoformat() if value else None, "id": conversation_id})


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    return _read_opaque(cursor, lambda data: (datetime.fromisoformat(data["v"]), str(data["id"])))


def encode_entry_position(entry: Doc) -> str:
    """An opaque cursor: a timeline page's last entry's place in the order (`decode_entry_cursor` reads it)."""
    received_at = entry.get("received_at")
    return _opaque({"id": entry["entry_id"], "kind": entry["kind"], "at": entry["at"].isoformat(),
                    "received_at": received_at.isoformat() if received_at else None})


def decode_entry_cursor(cursor: str) -> Entry:
    def entry(data: Doc) -> Entry:
        received_at = data["received_at"]
        return Entry(str(data["id"]), EntryKind(data["kind"]), datetime.fromisoformat(data["at"]),
                     datetime.fromisoformat(received_at) if received_at is not None else None)
    return _read_opaque(cursor, entry)


def _opaque(data: Doc) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


def _read_opaque(cursor: str, read: Callable[[Doc], T]) -> T:
    try:
        return read(json.loads(base64.urlsafe_b64decode(cursor.encode())))
    except (ValueError, KeyError, TypeError) as exc:
        raise ApiError(422, "invalid_cursor", "the cursor is not one this API returned") from exc


def conversation_json(conv: Conversation) -> Doc:
    doc = dict(vars(conv))  # shallow, as the repository's `to_doc`: what is not a plain value is rebuilt below
    del doc["answered_by_reply"], doc["applied_command_id"]  # the router's bookkeeping of redeliveries
    for key, value in doc.items():
        if isinstance(value, datetime):
            doc[key] = value.isoformat()
    doc["status"] = conv.status.value
    doc["assignee"] = {"kind": conv.assignee.kind.value, "id": conv.assignee.id} if conv.assignee else None
    doc["labels"] = list(conv.labels)
    doc["contact_fields"] = dict(conv.contact_fields)
    doc["first_response_seconds"] = conv.first_response_seconds
    return doc
