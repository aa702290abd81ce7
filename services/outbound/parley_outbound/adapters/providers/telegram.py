"""Telegram Bot API: sendMessage, sendPhoto, sendDocument… (reference/channels.md §3.6)."""

from __future__ import annotations

from typing import Any

import httpx

from parley_common.channels import TelegramChannel
from parley_outbound.adapters.providers.base import ProviderFailure, SendResult, json_body, post_json
from parley_outbound.domain.outgoing import Outgoing
from parley_outbound.domain.provider_errors import classify_telegram

_METHODS = {"image": ("sendPhoto", "photo"), "video": ("sendVideo", "video"), "audio": ("sendAudio", "audio"),
            "sticker": ("sendSticker", "sticker"), "document": ("sendDocument", "document")}


class TelegramAdapter:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def send(self, channel: TelegramChannel, message: Outgoing) -> SendResult:
        method, payload = telegram_request(message)
        url = f"{channel.api_base}/bot{channel.bot_token.get_secret_value()}/{method}"
        response = await post_json(self._client, url, payload)
        body = json_body(response)
        if not body.get("ok"):
            error_code = int(body.get("error_code") or response.status_code)
            parameters = body.get("parameters") or {}
            retry_after = parameters.get("retry_after")
            outcome = classify_telegram(error_code, str(body.get("description", "")),
                                        float(retry_after) if retry_after is not None else None)
            raise ProviderFailure(outcome, str(error_code), str(body.get("description", "")) or None)
        return SendResult(str(body["result"]["message_id"]))


def telegram_request(message: Outgoing) -> tuple[str, dict[str, Any]]:
    if message.media_url is None:
        return "sendMessage", {"chat_id": message.recipient, "text": message.text or ""}
    method, field = _METHODS.get(message.media_kind, _METHODS["document"])
    payload: dict[str, Any] = {"chat_id": message.recipient, field: message.media_url}
    if message.text and field != "sticker":
        payload["caption"] = message.text
    return method, payload
