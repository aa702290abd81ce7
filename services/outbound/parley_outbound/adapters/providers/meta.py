"""Messenger/Instagram Send API (reference/channels.md §2.4), and the Graph API error envelope it shares with
WhatsApp. A stored attachment goes through the Attachment Upload API first (`POST /{page}/message_attachments`,
multipart `message` + `filedata`, `is_reusable`) and is sent by `attachment_id`, so Meta never fetches from our
media service."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, NoReturn

import httpx

from parley_common.channel_catalogue import send_size_limit
from parley_common.channels import InstagramChannel, MessengerChannel
from parley_outbound.adapters.media_fetch import FetchedMedia
from parley_outbound.adapters.providers.base import (
    ProviderFailure,
    SendResult,
    json_body,
    post_form,
    post_json,
    retry_after,
)
from parley_outbound.adapters.providers.uploads import MESSENGER_TTL, ProviderMedia, Uploaded
from parley_outbound.domain.outgoing import Outgoing
from parley_outbound.domain.provider_errors import classify_meta

MetaChannel = MessengerChannel | InstagramChannel


def raise_graph_error(channel_type: Any, response: httpx.Response, body: dict[str, Any]) -> NoReturn:
    error = body.get("error") or {}
    code = str(error.get("code", response.status_code))
    outcome = classify_meta(channel_type, code, response.status_code)
    if outcome.retry:
        outcome = replace(outcome, retry_after_seconds=retry_after(response))
    details = (error.get("error_data") or {}).get("details") or error.get("message")
    raise ProviderFailure(outcome, code, str(details) if details else None)


class MessengerAdapter:
    """Messenger and Instagram (Facebook Login flavour): POST /{page or IG id}/messages with the Page token."""

    def __init__(self, client: httpx.AsyncClient, media: ProviderMedia | None = None) -> None:
        self._client = client
        self._media = media

    async def send(self, channel: MetaChannel, message: Outgoing) -> SendResult:
        url = f"{channel.graph_api_base}/{_account(channel)}/messages"
        payload = await self._attachment_payload(channel, message)
        result: SendResult | None = None
        for request in messenger_bodies(message, payload):  # text and attachment are separate Send API messages
            response = await post_json(self._client, url, request, params=_token(channel))
            body = json_body(response)
            if response.status_code >= 400 or "error" in body:
                raise_graph_error(channel.type, response, body)
            result = SendResult(str(body["message_id"]))
        assert result is not None
        return result

    async def _attachment_payload(self, channel: MetaChannel, message: Outgoing) -> dict[str, Any] | None:
        media, media_id = self._media, message.media_id
        if media is None or media_id is None:
            return {"url": message.media_url, "is_reusable": True} if message.media_url else None

        async def upload() -> Uploaded:
            async with media.fetcher.fetch(channel.tenant_id, media_id,
                                           send_size_limit(channel.type, message.media_kind)) as fetched:
                return await self._upload(channel, attachment_type(message.media_kind), fetched)

        uploaded = await media.uploads.once(channel.id, media_id, MESSENGER_TTL, upload)
        return {"attachment_id": uploaded.provider_id}

    async def _upload(self, channel: MetaChannel, kind: str, fetched: FetchedMedia) -> Uploaded:
        fields = {"message": json.dumps({"attachment": {"type": kind, "payload": {"is_reusable": True}}})}
        if isinstance(channel, InstagramChannel):
            fields["platform"] = "instagram"
        # Instagram uploads go through the linked Page; its Page token resolves `me` to that Page.
        account = channel.page_id if isinstance(channel, MessengerChannel) else "me"
        response = await post_form(self._client, f"{channel.graph_api_base}/{account}/message_attachments",
                                   fields, {"filedata": fetched.upload()}, params=_token(channel))
        body = json_body(response)
        if response.status_code >= 400 or "error" in body:
            raise_graph_error(channel.type, response, body)
        return Uploaded(str(body["attachment_id"]), fetched.info.file_name)


def _account(channel: MetaChannel) -> str:
    return channel.page_id if isinstance(channel, MessengerChannel) else channel.instagram_account_id


def _token(channel: MetaChannel) -> dict[str, str]:
    return {"access_token": channel.page_access_token.get_secret_value()}


def attachment_type(media_kind: str) -> str:
    return media_kind if media_kind in ("image", "audio", "video") else "file"


def messenger_bodies(message: Outgoing, attachment: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    if attachment is None:
        return [messenger_body(message)]
    if message.text:
        return [messenger_body(message), messenger_body(replace(message, text=None), attachment)]
    return [messenger_body(message, attachment)]


def messenger_body(message: Outgoing, attachment: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"recipient": {"id": message.recipient}}
    if message.tag:
        body.update(messaging_type="MESSAGE_TAG", tag=message.tag)
    else:
        body["messaging_type"] = "RESPONSE"
    if attachment is not None:
        body["message"] = {"attachment": {"type": attachment_type(message.media_kind), "payload": attachment}}
    else:
        body["message"] = {"text": message.text or ""}
    body["message"]["metadata"] = message.message_id
    return body
