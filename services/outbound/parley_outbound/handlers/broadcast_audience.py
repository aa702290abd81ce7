"""A broadcast's audience, a page at a time: the contacts matched in outbound's projection, the address each is
written to, the window facts of that address (activity, opt-out), and the template content with each variable
resolved — or why the contact is skipped. Preview and the runner read it the same way, so what the preview
counts is what the broadcast does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from parley_common.channels import Channels
from parley_common.events.common import ChannelType
from parley_common.events.outbound import TemplateContent
from parley_common.ids import ConversationKey
from parley_outbound.adapters.audience_repo import AudienceQuery, AudienceRepository
from parley_outbound.adapters.window_store import REBUILD_HOLD_SECONDS, WindowStore
from parley_outbound.domain.broadcasts import (
    ActivityFilter,
    Pool,
    SkipReason,
    VariableSource,
    recipient_address,
    resolve_variables,
)
from parley_outbound.domain.window import WindowFacts


@dataclass(frozen=True)
class BroadcastPlan:
    """A validated broadcast definition: what to send, from which numbers, to whom."""

    tenant_id: str
    pool: Pool
    template_name: str
    language: str
    variables: dict[str, VariableSource]
    header_variables: dict[str, VariableSource]
    extras: dict[str, Any]  # media_id / header_media / buttons: the same for every recipient
    query: AudienceQuery
    activity: ActivityFilter = field(default_factory=ActivityFilter)


@dataclass(frozen=True)
class Candidate:
    contact_id: str
    channel_id: str | None = None
    external_user_id: str | None = None
    facts: WindowFacts | None = None
    content: TemplateContent | None = None
    skip_reason: SkipReason | None = None
    skip_detail: str | None = None


class AudienceResolver:
    def __init__(self, audience: AudienceRepository, windows: WindowStore, channels: Channels) -> None:
        self._audience = audience
        self._windows = windows
        self._channels = channels

    async def pages(self, plan: BroadcastPlan, page: int) -> AsyncIterator[list[Candidate]]:
        whatsapp = frozenset(channel.id for channel in self._channels
                             if channel.tenant_id == plan.tenant_id and channel.type is ChannelType.WHATSAPP)
        async for contacts in self._audience.pages(plan.query, page):
            addressed = []
            for contact in contacts:
                identities = [(i["channel_id"], i["external_user_id"]) for i in contact.get("identities") or ()]
                addressed.append((contact, recipient_address(identities, plan.pool, whatsapp, contact["contact_id"])))
            keys = [ConversationKey(plan.tenant_id, *address) for _, address in addressed if address is not None]
            views = iter(await self._windows.views_once_rebuilt(keys, REBUILD_HOLD_SECONDS))
            candidates = []
            for contact, address in addressed:
                facts = next(views)[0] if address is not None else WindowFacts()
                if not plan.activity.admits(facts):
                    continue  # not in the audience at all (e.g. not active since the date asked)
                candidates.append(_candidate(plan, contact, address, facts))
            yield candidates


def _candidate(plan: BroadcastPlan, contact: dict[str, Any], address: tuple[str, str] | None,
               facts: WindowFacts) -> Candidate:
    contact_id = contact["contact_id"]
    if address is None:
        return Candidate(contact_id, skip_reason=SkipReason.NO_IDENTITY,
                         skip_detail=f"no identity on {plan.pool.channel_type.value}")
    body = resolve_variables(plan.variables, contact)
    header = resolve_variables(plan.header_variables, contact)
    missing = body.missing + tuple(f"header.{name}" for name in header.missing)
    if missing:
        return Candidate(contact_id, *address, facts=facts, skip_reason=SkipReason.MISSING_VARIABLE,
                         skip_detail=", ".join(missing))
    content = TemplateContent(name=plan.template_name, language=plan.language, variables=body.values,
                              header_variables=header.values, **plan.extras)
    return Candidate(contact_id, *address, facts=facts, content=content)
