"""Broadcasts: one approved template to many contacts, each recipient an ordinary send. Pure: who gets it on which
number, what each variable becomes, why a recipient is skipped, and the broadcast's life (scheduled → running ⇄
paused → completed, or cancelled).

A recipient is skipped before any send when the contact has no identity the pool can write to (`no_identity`) or a
mapped variable has neither a value nor a fallback (`missing_variable`). Blocked and opted-out customers are skipped
by the send pipeline's own policy (its refusals `customer_blocked` / `marketing_opted_out`), so a broadcast applies
exactly the rule a single send does."""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from parley_common.events.common import ChannelType
from parley_common.events.outbound import TemplateContent
from parley_outbound.domain.templates import Template, VariableSpec, VariableType, render_template_content
from parley_outbound.domain.validation import InvalidRequest
from parley_outbound.domain.window import WindowFacts

_MESSAGE_IDS = uuid.UUID("6f1c3a52-58a4-4c55-9a59-0b4f2d1c9e17")
CONTACT_FIELDS = ("display_name",)  # besides custom_fields.<name>
CUSTOM_FIELD_PREFIX = "custom_fields."


class BroadcastState(StrEnum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class SkipReason(StrEnum):
    BLOCKED = "blocked"
    OPTED_OUT = "opted_out"
    MISSING_VARIABLE = "missing_variable"
    NO_IDENTITY = "no_identity"


# The send pipeline's refusals that mean "skipped" for a broadcast (any other refusal counts as failed).
SKIPPED_BY_POLICY = {"customer_blocked": SkipReason.BLOCKED, "marketing_opted_out": SkipReason.OPTED_OUT}

_CONTROLS: dict[str, tuple[frozenset[BroadcastState], BroadcastState]] = {
    "pause": (frozenset({BroadcastState.SCHEDULED, BroadcastState.RUNNING}), BroadcastState.PAUSED),
    "resume": (frozenset({BroadcastState.PAUSED}), BroadcastState.RUNNING),
    "cancel": (frozenset({BroadcastState.SCHEDULED, BroadcastState.RUNNING, BroadcastState.PAUSED}),
               BroadcastState.CANCELLED),
}


class ControlRefused(ValueError):
    def __init__(self, action: str, state: BroadcastState) -> None:
        super().__init__(f"a {state.value} broadcast cannot {action}")
        self.action = action
        self.state = state


def controlled(action: str, state: BroadcastState) -> tuple[frozenset[BroadcastState], BroadcastState]:
    """The states `action` applies to and the state it leads to; ControlRefused when `state` is not one of them."""
    allowed, target = _CONTROLS[action]
    if state not in allowed:
        raise ControlRefused(action, state)
    return allowed, target


@dataclass(frozen=True, slots=True)
class VariableSource:
    """A template variable's value: a contact field (`display_name`, `custom_fields.<name>`) or a constant; the
    fallback when the contact lacks the field."""

    field: str | None = None
    constant: str | None = None
    fallback: str | None = None


@dataclass(frozen=True, slots=True)
class Resolved:
    values: dict[str, str]
    missing: tuple[str, ...]  # variables without a value or a fallback


def resolve_variables(mapping: Mapping[str, VariableSource], contact: Mapping[str, Any]) -> Resolved:
    """Each variable's value for one contact (a projected contact: display_name, fields)."""
    values: dict[str, str] = {}
    missing: list[str] = []
    for name, source in mapping.items():
        value = source.constant if source.field is None else field_value(contact, source.field)
        value = value if value not in (None, "") else source.fallback
        if value in (None, ""):
            missing.append(name)
        else:
            values[name] = str(value)
    return Resolved(values, tuple(missing))


def field_value(contact: Mapping[str, Any], name: str) -> str | None:
    if name.startswith(CUSTOM_FIELD_PREFIX):
        value = (contact.get("fields") or {}).get(name[len(CUSTOM_FIELD_PREFIX):])
    else:
        value = contact.get(name)
    return None if value is None else str(value)


def is_known_field(name: str) -> bool:
    return name in CONTACT_FIELDS or (name.startswith(CUSTOM_FIELD_PREFIX) and len(name) > len(CUSTOM_FIELD_PREFIX))


@dataclass(frozen=True, slots=True)
class Pool:
    """The numbers (channels) a broadcast sends from: all of one type."""

    channel_ids: tuple[str, ...]
    channel_type: ChannelType


def recipient_address(identities: Iterable[tuple[str, str]], pool: Pool, whatsapp_channels: frozenset[str],
                      contact_id: str) -> tuple[str, str] | None:
    """(channel id, external user id) to write to, or None (no identity the pool can reach).

    A customer who talks to one of the pool's numbers hears from that number. On WhatsApp the identity is the
    phone (wa_id), so a customer known on another of the tenant's numbers is reached from a pool number chosen
    by the contact id (stable across restarts, spread evenly)."""
    known = list(identities)
    for channel_id in pool.channel_ids:
        for identity_channel, user in known:
            if identity_channel == channel_id:
                return channel_id, user
    if pool.channel_type is ChannelType.WHATSAPP:
        for identity_channel, user in known:
            if identity_channel in whatsapp_channels:
                index = zlib.crc32(contact_id.encode()) % len(pool.channel_ids)
                return pool.channel_ids[index], user
    return None


@dataclass(frozen=True, slots=True)
class ActivityFilter:
    """The customer's last message on the identity the broadcast writes to (the window projection)."""

    active_since: datetime | None = None
    inactive_since: datetime | None = None
    opted_in: bool = False  # only customers who have not stopped marketing messages

    def admits(self, facts: WindowFacts) -> bool:
        last = facts.last_customer_at
        if self.active_since is not None and (last is None or last < self.active_since):
            return False
        if self.inactive_since is not None and last is not None and last >= self.inactive_since:
            return False
        return not (self.opted_in and facts.marketing_opted_out)


def message_id_for(broadcast_id: str, contact_id: str) -> str:
    """The one message a broadcast may send a contact: a resumed broadcast finds it stored and never sends twice."""
    return str(uuid.uuid5(_MESSAGE_IDS, f"{broadcast_id}|{contact_id}"))


@dataclass(frozen=True, slots=True)
class MessageCount:
    state: str
    reason: str | None
    count: int
    replied: int = 0


IN_FLIGHT = ("queued", "sending")
LEFT = ("sent", "delivered", "read")


def progress(recipients: int, resolve_skips: Mapping[str, int], messages: Sequence[MessageCount]) -> dict[str, Any]:
    """The counts a manager watches: sent counts every message that left (delivered and read ones too), delivered
    those delivered or read; skipped by reason (at resolve, or by the policy when sending); failed by reason."""
    skipped = {reason.value: int(resolve_skips.get(reason.value, 0)) for reason in SkipReason}
    failed: dict[str, int] = {}
    states = dict.fromkeys(("queued", "sent", "delivered", "read"), 0)
    replied = handled = 0
    for row in messages:
        handled += row.count
        replied += row.replied
        if row.state in IN_FLIGHT:
            states["queued"] += row.count
        elif row.state in LEFT:
            states["sent"] += row.count
            states["delivered"] += row.count if row.state in ("delivered", "read") else 0
            states["read"] += row.count if row.state == "read" else 0
        elif row.reason in SKIPPED_BY_POLICY:
            skipped[SKIPPED_BY_POLICY[row.reason].value] += row.count
        else:
            reason = row.reason or "unknown"
            failed[reason] = failed.get(reason, 0) + row.count
    resolved_skips = sum(int(count) for count in resolve_skips.values())
    return {"recipients": recipients, "pending": max(0, recipients - resolved_skips - handled), **states,
            "replied": replied, "failed": failed, "skipped": skipped}


def check_mapping(template: Template, body: Mapping[str, VariableSource], header: Mapping[str, VariableSource],
                  extras: Mapping[str, Any]) -> None:
    """Every template variable mapped, none unknown, and the constants, fallbacks, header media and buttons
    acceptable to the template (checked with a probe value for each contact field); InvalidRequest if not."""
    for where, specs, mapping in (("template.variables", template.specs(), body),
                                  ("template.header_variables", template.header_specs(), header)):
        unknown = sorted(set(mapping) - set(specs))
        if unknown:
            raise InvalidRequest("template_variable_unknown", f"the template has no variable {unknown[0]!r}",
                                 f"{where}.{unknown[0]}")
        missing = sorted(set(specs) - set(mapping))
        if missing:
            raise InvalidRequest("template_variable_missing", f"map the template's variable {missing[0]!r}",
                                 f"{where}.{missing[0]}")
    content = TemplateContent(name=template.name, language=template.language,
                              variables=_probe(template.specs(), body),
                              header_variables=_probe(template.header_specs(), header), **extras)
    render_template_content(template, content)


def _probe(specs: Mapping[str, VariableSpec], mapping: Mapping[str, VariableSource]) -> dict[str, str]:
    values = {}
    for name, spec in specs.items():
        source = mapping[name]
        given = source.constant if source.field is None else source.fallback
        if given is not None:
            values[name] = given
        elif spec.type is VariableType.DROPDOWN and spec.options:
            values[name] = spec.options[0]
        else:
            values[name] = "2000-01-01" if spec.type is VariableType.DATE else "x"
    return values
