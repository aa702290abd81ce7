"""WhatsApp Cloud API and Messenger/Instagram Send API: both Graph API, same error envelope."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx

from parley_common.channels import InstagramChannel, MessengerChannel, WhatsAppChannel
from parley_outbound.adapters.providers.base import ProviderFailure, SendResult, json_body, post_json, retry_after
from parley_outbound.domain.outgoing import Outgoing
from parley_outbound.domain.provider_errors import classify_meta


def _raise_graph_error(channel_type: Any, response: httpx.Response, body: dict[str, Any]) -> None:
    error = body.get("error") or {}
    code = str(error.get("code", response.status_code))
    outcome = classify_meta(channel_type, code, response.status_code)
    if outcome.retry:
        outcome = replace(outcome, retry_after_seconds=retry_after(response))
    details = (error.get("error_data") or {}).get("details") or error.get("message")
    raise ProviderFailure(outcome, code, str(details) if details else None)


class WhatsAppAdapter:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def send(self, channel: WhatsAppChannel, message: Outgoing) -> SendResult:
        url = f"{channel.graph_api_base}/{channel.phone_number_id}/messages"
        headers = {"Authorization": f"Bearer {channel.access_token.get_secret_value()}"}
        response = await post_json(self._client, url, whatsapp_body(message), headers)
        body = json_body(response)
        if response.status_code >= 400 or "error" in body:
            _raise_graph_error(channel.type, response, body)
        return SendResult(str(body["messages"][0]["id"]))


def whatsapp_body(message: Outgoing) -> dict[str, Any]:
    body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual",
                            "to": _whatsapp_to(message.recipient), "biz_opaque_callback_data": message.message_id}
    if message.template is not None:
        template: dict[str, Any] = {"name": message.template.name, "language": {"code": message.template.language}}
        if message.template.body_parameters:
            template["components"] = [{"type": "body", "parameters": [
                {"type": "text", "text": value} for value in message.template.body_parameters]}]
        body.update(type="template", template=template)
    elif message.media_url is not None:
        media: dict[str, Any] = {"link": message.media_url}
        if message.text and message.media_kind in ("image", "video", "document"):
            media["caption"] = message.text
        body.update(type=message.media_kind, **{message.media_kind: media})
    else:
        body.update(type="text", text={"body": message.text or "", "preview_url": True})
    return body


def _whatsapp_to(recipient: str) -> str:
    # A phone without '+' would get the *business* number's country code prepended by Meta (§1.9).
    return f"+{recipient}" if recipient.isdigit() else recipient


class MessengerAdapter:
    """Messenger and Instagram (Facebook Login flavour): POST /{page or IG id}/messages with the Page token."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def send(self, channel: MessengerChannel | InstagramChannel, message: Outgoing) -> SendResult:
        account = channel.page_id if isinstance(channel, MessengerChannel) else channel.instagram_account_id
        url = f"{channel.graph_api_base}/{account}/messages"
        params = {"access_token": channel.page_access_token.get_secret_value()}
        result: SendResult | None = None
        for request in messenger_bodies(message):  # text and attachment are separate Send API messages
            response = await post_json(self._client, url, request, params=params)
            body = json_body(response)
            if response.status_code >= 400 or "error" in body:
                _raise_graph_error(channel.type, response, body)
            result = SendResult(str(body["message_id"]))
        assert result is not None
        return result


def messenger_bodies(message: Outgoing) -> list[dict[str, Any]]:
    if message.media_url is not None and message.text:
        return [messenger_body(replace(message, media_url=None)), messenger_body(replace(message, text=None))]
    return [messenger_body(message)]


def messenger_body(message: Outgoing) -> dict[str, Any]:
    body: dict[str, Any] = {"recipient": {"id": message.recipient}}
    if message.tag:
        body.update(messaging_type="MESSAGE_TAG", tag=message.tag)
    else:
        body["messaging_type"] = "RESPONSE"
    if message.media_url is not None:
        kind = message.media_kind if message.media_kind in ("image", "audio", "video") else "file"
        body["message"] = {"attachment": {"type": kind, "payload": {"url": message.media_url, "is_reusable": True}}}
    else:
        body["message"] = {"text": message.text or ""}
    body["message"]["metadata"] = message.message_id
    return body
