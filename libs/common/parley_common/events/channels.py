"""What a channel's provider says about the channel itself rather than a conversation: its message templates
changing status or quality, and the account's or number's health (WhatsApp business-side webhooks)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field

from parley_common.events.common import ChannelType
from parley_common.events.envelope import Envelope

TemplateState = Literal["approved", "pending", "rejected", "paused", "disabled"]


class _ChannelScoped(Envelope):
    channel_id: str = Field(min_length=1, max_length=128)
    channel_type: ChannelType
    provider_timestamp: AwareDatetime

    def partition_key(self) -> bytes:
        return f"{self.tenant_id}|{self.channel_id}".encode()


class TemplateUpdated(_ChannelScoped):
    """A template's status or quality changed at the provider (WhatsApp `message_template_status_update`,
    `message_template_quality_update`). A paused or disabled template must not be sent."""

    source = "parley/ingest"
    type: Literal["parley.channel.template_updated"] = "parley.channel.template_updated"
    schema_version: Literal[1] = 1
    name: str = Field(min_length=1)
    language: str | None = Field(default=None, description="None: every language of the template")
    provider_template_id: str | None = None
    provider_event: str = Field(description="the provider's word, e.g. APPROVED, PAUSED, FLAGGED, quality_update")
    status: TemplateState | None = Field(
        default=None, description="what the update means for sending; None when it changes nothing about it")
    quality: str | None = Field(default=None, description="the new quality score: GREEN, YELLOW, RED, UNKNOWN")
    reason: str | None = None


class ChannelHealthReported(_ChannelScoped):
    """The provider reports on the account or the number behind a channel (WhatsApp `account_update`,
    `phone_number_quality_update`, `account_alerts`, …): quality, messaging limits, restrictions."""

    source = "parley/ingest"
    type: Literal["parley.channel.health_reported"] = "parley.channel.health_reported"
    schema_version: Literal[1] = 1
    kind: str = Field(description="the webhook field, e.g. phone_number_quality_update")
    event: str | None = Field(default=None, description="the provider's event, e.g. FLAGGED, DOWNGRADE, UPGRADE")
    messaging_limit: str | None = Field(default=None, description="the current messaging limit tier, when given")
    detail: str | None = None
    raw: dict[str, Any] | None = Field(default=None, description="the provider's value, when under 64 KiB")


ChannelUpdate = Annotated[TemplateUpdated | ChannelHealthReported, Field(discriminator="type")]
