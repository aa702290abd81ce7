"""What the broadcast API does: validate a definition against the channels and templates, preview it, store it,
control it, and read its progress and recipients."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

from parley_common.auth import Principal
from parley_common.channels import Channels
from parley_common.clock import Clock
from parley_common.errors import ApiError
from parley_common.events.common import ChannelType, SenderKind
from parley_common.ids import new_id
from parley_outbound.adapters.broadcasts_repo import BroadcastRepository
from parley_outbound.adapters.messages_repo import MessageRepository
from parley_outbound.adapters.templates_repo import TemplateRepository
from parley_outbound.domain.broadcasts import (
    SKIPPED_BY_POLICY,
    BroadcastState,
    ControlRefused,
    SkipReason,
    check_mapping,
    controlled,
    progress,
)
from parley_outbound.domain.templates import Template, TemplateStatus, render_template_content
from parley_outbound.domain.validation import InvalidRequest
from parley_outbound.domain.window import MessageKind, SendIntent, decide
from parley_outbound.handlers.broadcast_audience import AudienceResolver, BroadcastPlan, Candidate
from parley_outbound.handlers.broadcast_models import BroadcastModel, PreviewModel, to_plan
from parley_outbound.handlers.http_templates import to_domain

PREVIEW_PAGE = 1000
SKIPPED_STATUS = "skipped"


def invalid(error: InvalidRequest) -> ApiError:
    return ApiError(422, error.code, error.message, {"field": error.field} if error.field else None)


class BroadcastService:
    def __init__(self, repo: BroadcastRepository, messages: MessageRepository, templates: TemplateRepository,
                 resolver: AudienceResolver, channels: Channels, clock: Clock,
                 wake_runner: Callable[[], None] = lambda: None) -> None:
        self._wake_runner = wake_runner
        self._repo = repo
        self._messages = messages
        self._templates = templates
        self._resolver = resolver
        self._channels = channels
        self._clock = clock

    async def _checked(self, body: BroadcastModel, tenant_id: str) -> tuple[BroadcastPlan, dict[str, Template]]:
        """The plan and each pool channel's template, or a refusal naming what is wrong."""
        types = {self._channels.for_caller(tenant_id, channel_id, 422).type for channel_id in body.channel_ids}
        if len(types) > 1:
            raise ApiError(422, "channel_types_differ", "a pool of numbers is of one channel type",
                           {"field": "channel_ids"})
        plan = to_plan(body, tenant_id, types.pop())
        templates = {}
        for channel_id in body.channel_ids:
            doc = await self._templates.get(tenant_id, channel_id, body.template.name, body.template.language)
            if doc is None:
                raise ApiError(422, "template_not_found", f"no template {body.template.name!r} "
                               f"({body.template.language}) on {channel_id}", {"field": "template.name"})
            template = to_domain(doc)
            if template.status is not TemplateStatus.APPROVED:
                raise ApiError(422, "template_not_approved", f"the template is {template.status.value} on "
                               f"{channel_id}", {"field": "template.name"})
            try:
                check_mapping(template, plan.variables, plan.header_variables, plan.extras)
            except InvalidRequest as error:
                raise invalid(error) from None
            templates[channel_id] = template
        return plan, templates

    async def create(self, body: BroadcastModel, principal: Principal) -> dict[str, Any]:
        plan, _ = await self._checked(body, principal.tenant_id)
        now = self._clock.now()
        doc = {"_id": new_id(), "tenant_id": principal.tenant_id, "name": body.name,
               "definition": body.model_dump(mode="json", exclude={"samples"}),
               "channel_type": plan.pool.channel_type.value, "state": BroadcastState.SCHEDULED.value,
               "start_at": body.start_at or now, "created_by": principal.login, "created_at": now, "updated_at": now,
               "history": {BroadcastState.SCHEDULED.value: now}, "resolved": False, "recipients": 0,
               "resolve_skips": {}, "cursor": None, "owner": None, "lease_until": None}
        await self._repo.create(doc)
        self._wake_runner()
        return await self.view(doc)

    async def preview(self, body: PreviewModel, principal: Principal) -> dict[str, Any]:
        """The audience read as the broadcast would read it now: its size, who would be skipped and why, what
        the policy would refuse, and the rendered message of the first sendable contacts."""
        plan, templates = await self._checked(body, principal.tenant_id)
        size = 0
        skipped: Counter[str] = Counter({reason.value: 0 for reason in SkipReason})
        refused: Counter[str] = Counter()
        samples: list[dict[str, Any]] = []
        async for candidates in self._resolver.pages(plan, PREVIEW_PAGE):
            for candidate in candidates:
                size += 1
                outcome = self._outcome(plan, templates, candidate)
                if outcome is None:
                    if len(samples) < body.samples:
                        samples.append(_sample(templates, candidate))
                elif outcome in SKIPPED_BY_POLICY:
                    skipped[SKIPPED_BY_POLICY[outcome].value] += 1
                elif outcome in skipped:
                    skipped[outcome] += 1
                else:
                    refused[outcome] += 1
        sendable = size - sum(skipped.values()) - sum(refused.values())
        return {"audience_size": size, "sendable": sendable, "skipped": dict(skipped), "refused": dict(refused),
                "samples": samples}

    def _outcome(self, plan: BroadcastPlan, templates: dict[str, Template], candidate: Candidate) -> str | None:
        """None when the pipeline would send to this candidate; else the skip reason or the refusal code."""
        if candidate.skip_reason is not None:
            return candidate.skip_reason.value
        assert candidate.content is not None and candidate.channel_id is not None and candidate.facts is not None
        template = templates[candidate.channel_id]
        try:
            render_template_content(template, candidate.content)
        except InvalidRequest as error:
            return error.code
        intent = SendIntent(plan.pool.channel_type, SenderKind.SYSTEM, MessageKind.TEMPLATE, template.category)
        if plan.pool.channel_type is ChannelType.EMAIL:
            return None
        decision = decide(intent, candidate.facts, self._clock.now())
        return None if decision.allowed else decision.reason.value

    async def newest(self, tenant_id: str, limit: int) -> list[dict[str, Any]]:
        return await self._repo.newest(tenant_id, limit)

    async def get(self, tenant_id: str, broadcast_id: str) -> dict[str, Any]:
        doc = await self._repo.get(tenant_id, broadcast_id)
        if doc is None:
            raise ApiError(404, "broadcast_not_found", "no such broadcast")
        return doc

    async def control(self, principal: Principal, broadcast_id: str, action: str) -> dict[str, Any]:
        doc = await self.get(principal.tenant_id, broadcast_id)
        try:
            expected, target = controlled(action, BroadcastState(doc["state"]))
        except ControlRefused as refused:
            raise ApiError(409, "broadcast_state", str(refused), {"state": refused.state.value}) from None
        changed = await self._repo.change_state(principal.tenant_id, broadcast_id, expected, target,
                                                self._clock.now())
        if changed is None:  # moved meanwhile (e.g. it completed): answer from what it is now
            current = await self.get(principal.tenant_id, broadcast_id)
            raise ApiError(409, "broadcast_state", f"a {current['state']} broadcast cannot {action}",
                           {"state": current["state"]})
        if target is BroadcastState.RUNNING:
            self._wake_runner()
        return await self.view(changed)

    async def progress(self, doc: dict[str, Any]) -> dict[str, Any]:
        counts = await self._messages.broadcast_counts(doc["_id"])
        return progress(int(doc.get("recipients") or 0), doc.get("resolve_skips") or {}, counts)

    async def view(self, doc: dict[str, Any]) -> dict[str, Any]:
        return {"id": doc["_id"], "name": doc["name"], "state": doc["state"], "channel_type": doc["channel_type"],
                "definition": doc["definition"], "start_at": doc["start_at"], "created_by": doc["created_by"],
                "created_at": doc["created_at"], "history": doc.get("history") or {},
                "resolved": bool(doc.get("resolved")), "runner": doc.get("owner"),
                "progress": await self.progress(doc)}

    async def recipient_rows(self, doc: dict[str, Any], after: str | None, limit: int) -> list[dict[str, Any]]:
        return await self._rows(await self._repo.recipients(doc["_id"], after, limit))

    async def all_rows(self, doc: dict[str, Any]) -> AsyncIterator[list[dict[str, Any]]]:
        async for page in self._repo.all_recipients(doc["_id"], PREVIEW_PAGE):
            yield await self._rows(page)

    async def _rows(self, recipients: list[dict[str, Any]]) -> list[dict[str, Any]]:
        messages = await self._messages.get_many([r["message_id"] for r in recipients if not r.get("skip_reason")])
        return [_row(recipient, messages.get(recipient["message_id"])) for recipient in recipients]


def _sample(templates: dict[str, Template], candidate: Candidate) -> dict[str, Any]:
    assert candidate.content is not None and candidate.channel_id is not None
    return {"contact_id": candidate.contact_id, "channel_id": candidate.channel_id,
            "external_user_id": candidate.external_user_id,
            "text": render_template_content(templates[candidate.channel_id], candidate.content)}


def _row(recipient: dict[str, Any], message: dict[str, Any] | None) -> dict[str, Any]:
    """One recipient as the list and the export show it: skipped with the reason, pending (not sent yet), or
    the message's state and reason."""
    status, reason = "pending", None
    if recipient.get("skip_reason"):
        status, reason = SKIPPED_STATUS, recipient["skip_reason"]
    elif message is not None:
        status, reason = message["state"], message.get("reason")
        if status == "sending":
            status = "queued"
        if reason in SKIPPED_BY_POLICY:
            status, reason = SKIPPED_STATUS, SKIPPED_BY_POLICY[reason].value
    history = (message or {}).get("history") or {}
    return {"id": recipient["_id"], "contact_id": recipient["contact_id"], "channel_id": recipient.get("channel_id"),
            "external_user_id": recipient.get("external_user_id"), "message_id": recipient["message_id"],
            "status": status, "reason": reason, "detail": recipient.get("skip_detail"),
            "sent_at": history.get("sent"), "delivered_at": history.get("delivered"), "read_at": history.get("read"),
            "replied_at": (message or {}).get("replied_at")}
