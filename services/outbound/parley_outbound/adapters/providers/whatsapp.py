"""WhatsApp Cloud API: `POST /{phone-number-id}/messages` (reference/channels.md §1.9) and, for a stored
attachment, `POST /{phone-number-id}/media` first (§1.11): the file is uploaded once per channel and sent by its
WhatsApp media id — Meta never fetches from our media service, which may be internal."""

from __future__ import annotations

from typing import Any

import httpx

from parley_common.channel_catalogue import send_size_limit
from parley_common.channels import WhatsAppChannel
from parley_outbound.adapters.media_fetch import FetchedMedia
from parley_outbound.adapters.providers.base import SendResult, json_body, post_form, post_json
from parley_outbound.adapters.providers.meta import raise_graph_error
from parley_outbound.adapters.providers.uploads import WHATSAPP_TTL, ProviderMedia, Uploaded
from parley_outbound.domain.outgoing import HeaderCall, Outgoing, TemplateCall

MediaRef = dict[str, str]  # {"id": …} or {"link": …}, plus "filename" for documents
CAPTIONED = ("image", "video", "document")


class WhatsAppAdapter:
    def __init__(self, client: httpx.AsyncClient, media: ProviderMedia | None = None) -> None:
        self._client = client
        self._media = media

    async def send(self, channel: WhatsAppChannel, message: Outgoing) -> SendResult:
        attachment = await self._attachment(channel, message)
        url = f"{channel.graph_api_base}/{channel.phone_number_id}/messages"
        response = await post_json(self._client, url, whatsapp_body(message, attachment), _auth(channel))
        body = json_body(response)
        if response.status_code >= 400 or "error" in body:
            raise_graph_error(channel.type, response, body)
        return SendResult(str(body["messages"][0]["id"]))

    async def _attachment(self, channel: WhatsAppChannel, message: Outgoing) -> MediaRef | None:
        """The stored attachment as an uploaded WhatsApp media id; a bare link when no media source is set."""
        media, media_id = self._media, message.media_id
        if media is None or media_id is None:
            return {"link": message.media_url} if message.media_url else None

        async def upload() -> Uploaded:
            limit = send_size_limit(channel.type, message.media_kind)
            async with media.fetcher.fetch(channel.tenant_id, media_id, limit) as fetched:
                return await self._upload(channel, fetched)

        uploaded = await media.uploads.once(channel.id, media_id, WHATSAPP_TTL, upload)
        ref = {"id": uploaded.provider_id}
        if uploaded.file_name:
            ref["filename"] = uploaded.file_name
        return ref

    async def _upload(self, channel: WhatsAppChannel, fetched: FetchedMedia) -> Uploaded:
        url = f"{channel.graph_api_base}/{channel.phone_number_id}/media"
        fields = {"messaging_product": "whatsapp", "type": fetched.info.mime_type}
        response = await post_form(self._client, url, fields, {"file": fetched.upload()}, _auth(channel))
        body = json_body(response)
        if response.status_code >= 400 or "error" in body:
            raise_graph_error(channel.type, response, body)  # 131053 and friends: classified like a send
        return Uploaded(str(body["id"]), fetched.info.file_name)


def _auth(channel: WhatsAppChannel) -> dict[str, str]:
    return {"Authorization": f"Bearer {channel.access_token.get_secret_value()}"}


def whatsapp_body(message: Outgoing, attachment: MediaRef | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual",
                            "to": _whatsapp_to(message.recipient), "biz_opaque_callback_data": message.message_id}
    if message.template is not None:
        template: dict[str, Any] = {"name": message.template.name, "language": {"code": message.template.language}}
        components = template_components(message.template, attachment)
        if components:
            template["components"] = components
        body.update(type="template", template=template)
    elif attachment is not None:
        kind = message.media_kind
        media = _media_object(kind, attachment)
        if message.text and kind in CAPTIONED:
            media["caption"] = message.text
        body.update(type=kind, **{kind: media})
    else:
        body.update(type="text", text={"body": message.text or "", "preview_url": True})
    return body


def template_components(call: TemplateCall, attachment: MediaRef | None) -> list[dict[str, Any]]:
    """header (text values or media), body values, then one component per button value (Meta's order)."""
    components: list[dict[str, Any]] = []
    if call.header is not None:
        components.append({"type": "header", "parameters": _header_parameters(call.header, attachment)})
    if call.body_parameters:
        names = call.body_names or ("",) * len(call.body_parameters)
        components.append({"type": "body", "parameters": [
            _text(value, name) for value, name in zip(call.body_parameters, names, strict=True)]})
    for button in call.buttons:
        components.append({"type": "button", "sub_type": button.sub_type, "index": str(button.index),
                           "parameters": [_button_parameter(button.sub_type, button.value)]})
    return components


def _header_parameters(header: HeaderCall, attachment: MediaRef | None) -> list[dict[str, Any]]:
    if header.format == "text":
        return [_text(value) for value in header.text_parameters]
    if header.from_attachment:
        ref = attachment or {}
    else:
        ref = {"link": header.link or ""} | ({"filename": header.filename} if header.filename else {})
    return [{"type": header.format, header.format: _media_object(header.format, ref)}]


def _media_object(kind: str, ref: MediaRef) -> dict[str, Any]:
    """id or link; the file name only where WhatsApp shows one (documents)."""
    media: dict[str, Any] = {key: value for key, value in ref.items() if key != "filename"}
    if kind == "document" and ref.get("filename"):
        media["filename"] = ref["filename"]
    return media


def _text(value: str, name: str = "") -> dict[str, Any]:
    # Named-parameter templates label each value; positional ones ({{1}}, {{2}}…) go by order only.
    parameter = {"type": "text", "text": value}
    if name and not name.isdigit():
        parameter["parameter_name"] = name
    return parameter


def _button_parameter(sub_type: str, value: str) -> dict[str, Any]:
    if sub_type == "quick_reply":
        return {"type": "payload", "payload": value}
    if sub_type == "copy_code":
        return {"type": "coupon_code", "coupon_code": value}
    return {"type": "text", "text": value}  # url: the dynamic suffix


def _whatsapp_to(recipient: str) -> str:
    # A phone without '+' would get the *business* number's country code prepended by Meta (§1.9).
    return f"+{recipient}" if recipient.isdigit() else recipient
