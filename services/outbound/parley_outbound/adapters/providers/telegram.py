"""Telegram Bot API: sendMessage, sendPhoto, sendDocument… (reference/channels.md §3.6).

A stored attachment is uploaded as a multipart file with the send itself; Telegram answers the file's
`file_id`, which this bot may send again by id (no second upload), so it is cached per channel and media id."""

from __future__ import annotations

from typing import Any

import httpx

from parley_common.channel_catalogue import send_size_limit
from parley_common.channels import TelegramChannel
from parley_outbound.adapters.media_fetch import FetchedMedia
from parley_outbound.adapters.providers.base import ProviderFailure, SendResult, json_body, post_form, post_json
from parley_outbound.adapters.providers.uploads import TELEGRAM_TTL, ProviderMedia, Uploaded
from parley_outbound.domain.outgoing import Outgoing
from parley_outbound.domain.provider_errors import classify_telegram

_METHODS = {"image": ("sendPhoto", "photo"), "video": ("sendVideo", "video"), "audio": ("sendAudio", "audio"),
            "sticker": ("sendSticker", "sticker"), "document": ("sendDocument", "document")}


class TelegramAdapter:
    def __init__(self, client: httpx.AsyncClient, media: ProviderMedia | None = None) -> None:
        self._client = client
        self._media = media

    async def send(self, channel: TelegramChannel, message: Outgoing) -> SendResult:
        if message.media_id is not None and self._media is not None:
            return await self._send_stored(channel, message, self._media, message.media_id)
        method, payload = telegram_request(message)
        return _result(await post_json(self._client, _url(channel, method), payload))[0]

    async def _send_stored(self, channel: TelegramChannel, message: Outgoing, media: ProviderMedia,
                           media_id: str, stale_ok: bool = True) -> SendResult:
        """By cached file_id when this bot sent the file before; else the upload is the send (its answer
        carries the file_id for next time)."""
        sent: list[SendResult] = []

        async def upload_and_send() -> Uploaded:
            limit = send_size_limit(channel.type, message.media_kind)
            async with media.fetcher.fetch(channel.tenant_id, media_id, limit) as fetched:
                result, file_id = await self._upload(channel, message, fetched)
            sent.append(result)
            return Uploaded(file_id)

        uploaded = await media.uploads.once(channel.id, media_id, TELEGRAM_TTL, upload_and_send)
        if sent:
            return sent[0]
        method, payload = telegram_request(message, uploaded.provider_id)
        try:
            return _result(await post_json(self._client, _url(channel, method), payload))[0]
        except ProviderFailure as failure:
            if not stale_ok or "file identifier" not in (failure.detail or ""):
                raise
        await media.uploads.forget(channel.id, media_id)  # Telegram no longer knows the file: upload it again
        return await self._send_stored(channel, message, media, media_id, stale_ok=False)

    async def _upload(self, channel: TelegramChannel, message: Outgoing,
                      fetched: FetchedMedia) -> tuple[SendResult, str]:
        method, field = _METHODS.get(message.media_kind, _METHODS["document"])
        fields = {key: str(value) for key, value in telegram_request(message, "")[1].items() if key != field}
        response = await post_form(self._client, _url(channel, method), fields, {field: fetched.upload()})
        result, body = _result(response)
        return result, file_id_of(body["result"], field)


def _url(channel: TelegramChannel, method: str) -> str:
    return f"{channel.api_base}/bot{channel.bot_token.get_secret_value()}/{method}"


def _result(response: httpx.Response) -> tuple[SendResult, dict[str, Any]]:
    body = json_body(response)
    if not body.get("ok"):
        error_code = int(body.get("error_code") or response.status_code)
        parameters = body.get("parameters") or {}
        retry_after = parameters.get("retry_after")
        outcome = classify_telegram(error_code, str(body.get("description", "")),
                                    float(retry_after) if retry_after is not None else None)
        raise ProviderFailure(outcome, str(error_code), str(body.get("description", "")) or None)
    sent = body["result"]
    chat = sent.get("chat") if isinstance(sent.get("chat"), dict) else {}
    # keyed as ingest keys Telegram messages (message ids count per chat): a reaction or a reply to it finds it
    return SendResult(f"{chat['id']}:{sent['message_id']}" if chat.get("id") is not None
                      else str(sent["message_id"])), body


def file_id_of(sent: dict[str, Any], field: str) -> str:
    """The file_id in the sent Message: a photo comes back as several sizes (the largest is last)."""
    value = sent[field]
    return str((value[-1] if isinstance(value, list) else value)["file_id"])


def telegram_request(message: Outgoing, file: str | None = None) -> tuple[str, dict[str, Any]]:
    """The method and JSON payload; `file` is a file_id (or the link of a file Telegram fetches itself)."""
    file = file if file is not None else message.media_url
    if file is None:
        return "sendMessage", {"chat_id": message.recipient, "text": message.text or ""}
    method, field = _METHODS.get(message.media_kind, _METHODS["document"])
    payload: dict[str, Any] = {"chat_id": message.recipient, field: file}
    if message.text and field != "sticker":
        payload["caption"] = message.text
    return method, payload
