"""GET /v1/channels: the tenant's channels a conversation can be started on by phone, and how (New conversation)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from parley_common.auth import Principal, Role, require_roles
from parley_common.channels import Channels
from parley_outbound.domain.phone_recipient import WriteFirst, write_first_by_phone

READERS = (Role.AGENT, Role.MANAGER, Role.OWNER, Role.INTEGRATION)


class WriteFirstChannel(BaseModel):
    id: str
    type: str
    write_first: WriteFirst = Field(description=(
        "template: the phone is the address and only an approved template may open the conversation (WhatsApp); "
        "known_customer: a text to the contact with this phone who has written to this bot (Telegram, Viber), "
        "else 422 customer_not_on_channel"))


def channels_router(channels: Channels) -> APIRouter:
    router = APIRouter(prefix="/v1/channels", tags=["channels"])

    @router.get("", summary="The tenant's channels on which a conversation can be started by phone, and how")
    async def listed(principal: Principal = Depends(require_roles(*READERS))) -> list[WriteFirstChannel]:
        options = []
        for channel in channels:
            how = write_first_by_phone(channel.type)
            if channel.tenant_id == principal.tenant_id and how is not None:
                options.append(WriteFirstChannel(id=channel.id, type=channel.type.value, write_first=how))
        return sorted(options, key=lambda option: option.id)

    return router
