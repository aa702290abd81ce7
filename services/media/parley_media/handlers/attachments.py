"""Inbound email attachments: ingest hands the bytes over on parley.inbound.attachments.v1 (inside the
cluster, base64 in the event, topic max 36 MB), keyed like the message, so nothing is fetched from outside.
The message's MediaPart (source=email_attachment) and these bytes may arrive in either order: both land on
the same media id, derived from (tenant, channel, attachment id) with the service's id key."""

from __future__ import annotations

import base64
import binascii
import io

from parley_common.channels import Channels
from parley_common.events.inbound import EmailAttachmentReceived
from parley_common.records import PermanentFailure
from parley_media.domain import limits
from parley_media.domain.model import MediaState, inbound_media_id
from parley_media.handlers.pipeline import MediaPipeline, Origin


class EmailAttachments:
    def __init__(self, pipeline: MediaPipeline, channels: Channels, id_key: bytes) -> None:
        self.pipeline = pipeline
        self.id_key = id_key
        self.channels = channels

    async def on_attachment(self, event: EmailAttachmentReceived) -> None:
        channel = self.channels.get(event.channel_id)
        if channel is None or channel.tenant_id != event.tenant_id:
            raise PermanentFailure("unknown_channel", f"no channel {event.channel_id} for the tenant")
        try:
            content = base64.b64decode(event.content_base64, validate=True)
        except binascii.Error:
            raise PermanentFailure("invalid_content", "content_base64 is not base64") from None
        origin = Origin(
            media_id=inbound_media_id(self.id_key, event.tenant_id, event.channel_id, event.attachment_id),
            tenant_id=event.tenant_id, channel_id=event.channel_id, channel_type=channel.type.value,
            direction=limits.Direction.INBOUND, received_at=event.occurred_at, correlation_id=event.correlation_id,
            external_user_id=event.external_user_id, provider_message_id=event.provider_message_id,
            attachment_id=event.attachment_id, file_name=event.file_name, declared_mime=event.declared_mime_type,
        )
        record = await self.pipeline.accept(origin, io.BytesIO(content), len(content), event.declared_mime_type)
        if record["state"] == MediaState.STORED.value:
            await self.pipeline.announce_stored(record)
        elif record["state"] == MediaState.FAILED.value:
            raise PermanentFailure(record.get("failure_reason") or "refused", record.get("last_error"))
