"""/v1/templates: managers and owners register, list, read and sync templates from WhatsApp; agents and
integrations list and read the approved ones (to pick one when the window is closed), and change nothing."""

from __future__ import annotations

from typing import Any, Literal

import httpx
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from parley_common.auth import MANAGERS, Principal, Role, require_roles
from parley_common.bounds import PathId
from parley_common.channels import Channels, WhatsAppChannel
from parley_common.errors import ApiError, documented_errors
from parley_common.mongo import read_stored
from parley_outbound.adapters.providers.base import ProviderFailure
from parley_outbound.adapters.providers.whatsapp_templates import fetch_templates
from parley_outbound.adapters.templates_repo import TemplateRepository
from parley_outbound.domain.templates import ButtonSpec, Template, TemplateStatus, VariableSpec, VariableType
from parley_outbound.domain.window import PricingCategory


class VariableModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_]{1,64}$")
    type: VariableType = VariableType.TEXT
    options: list[str] = Field(default_factory=list, description="the choices of a dropdown variable")
    max_length: int = Field(default=1024, ge=1, le=4096, strict=True)


class HeaderModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: Literal["text", "image", "video", "document", "location", "gif", "product"] = "text"
    text: str | None = None


class ButtonModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = Field(description="quick_reply, url (a {{1}} in the url takes a suffix at send), copy_code, "
                                  "phone_number, otp, flow, …")
    text: str = ""
    url: str | None = None
    phone_number: str | None = None


class TemplateModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9_]{1,512}$")
    language: str = Field(pattern=r"^[A-Za-z]{2,3}(_[A-Za-z0-9]{2,4})?$")
    category: Literal["utility", "marketing", "authentication"]
    status: TemplateStatus = TemplateStatus.PENDING
    header: HeaderModel | None = None
    body: str = Field(min_length=1, max_length=1024)
    footer: str | None = Field(default=None, max_length=60)
    buttons: list[ButtonModel] = Field(default_factory=list, max_length=10)
    variables: list[VariableModel] = Field(default_factory=list)
    provider_id: str | None = None


def to_domain(doc: dict[str, Any]) -> Template:
    model = read_stored(TemplateModel, doc)  # its _id, tenant_id and channel_id are no fields of the model
    return Template(
        name=model.name, language=model.language, category=PricingCategory(model.category), status=model.status,
        body=model.body, header_text=model.header.text if model.header and model.header.format == "text" else None,
        footer=model.footer,
        variables=tuple(VariableSpec(v.name, v.type, tuple(v.options), v.max_length) for v in model.variables),
        header_format=model.header.format if model.header else None,
        buttons=tuple(ButtonSpec(button.type.lower(), button.text, button.url) for button in model.buttons),
    )


def templates_router(templates: TemplateRepository, channels: Channels, http: httpx.AsyncClient) -> APIRouter:
    router = APIRouter(prefix="/v1/templates", tags=["templates"])
    managers = Depends(require_roles(*MANAGERS))
    readers = Depends(require_roles(*MANAGERS, Role.AGENT, Role.INTEGRATION))

    def own_channel(principal: Principal, channel_id: str) -> None:
        channels.for_caller(principal.tenant_id, channel_id)

    @router.put("/{channel_id}", summary="Register or replace a template (name + language)",
                responses=documented_errors({403: "forbidden (managers and owners only)", 404: "unknown_channel"}))
    async def put(channel_id: PathId, body: TemplateModel, principal: Principal = managers) -> TemplateModel:
        own_channel(principal, channel_id)
        await templates.upsert(principal.tenant_id, channel_id, body.model_dump(mode="json"))
        return body

    @router.get("", summary="Templates of the tenant, optionally of one channel or status (agents and "
                            "integrations: approved ones only)", responses=documented_errors({}))
    async def list_all(channel_id: str | None = None, status: TemplateStatus | None = None,
                       principal: Principal = readers) -> list[dict[str, Any]]:
        wanted = status.value if status else None
        if not principal.has_any(MANAGERS):
            if wanted not in (None, TemplateStatus.APPROVED.value):
                return []
            wanted = TemplateStatus.APPROVED.value
        docs = await templates.list(principal.tenant_id, channel_id, wanted)
        return [{key: value for key, value in doc.items() if key not in ("_id", "tenant_id")} for doc in docs]

    @router.get("/{channel_id}/{name}/{language}",
                summary="One template (agents and integrations: an approved one; others answer 404)",
                responses=documented_errors({404: "not_found"}))
    async def get(channel_id: PathId, name: PathId, language: PathId, principal: Principal = readers) -> dict[str, Any]:
        doc = await templates.get(principal.tenant_id, channel_id, name, language)
        if doc is None or not (principal.has_any(MANAGERS) or doc.get("status") == TemplateStatus.APPROVED.value):
            raise ApiError(404, "not_found", "no such template")
        return {key: value for key, value in doc.items() if key not in ("_id", "tenant_id")}

    @router.post("/{channel_id}/sync", summary="Fetch the channel's templates from the WhatsApp Business API")
    async def sync(channel_id: PathId, principal: Principal = managers) -> dict[str, int]:
        own_channel(principal, channel_id)
        channel = channels.get(channel_id)
        if not isinstance(channel, WhatsAppChannel) or not channel.waba_id:
            raise ApiError(422, "sync_unsupported", "only WhatsApp channels with a waba_id can be synced")
        try:
            fetched = await fetch_templates(http, channel)
        except ProviderFailure as failure:
            raise ApiError(502, "provider_error",
                           f"the provider refused the listing: {failure.outcome.reason}") from None
        synced = 0
        for item in fetched:
            try:
                model = TemplateModel.model_validate(item)
            except ValidationError:
                continue  # a template kind we do not model (e.g. a carousel without body); counted as skipped
            await templates.upsert(principal.tenant_id, channel_id, model.model_dump(mode="json"))
            synced += 1
        return {"synced": synced, "skipped": len(fetched) - synced}

    return router
