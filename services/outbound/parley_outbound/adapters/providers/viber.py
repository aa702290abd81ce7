"""Viber REST bot API: send_message (reference/channels.md §4.6, status codes §4.7)."""

from __future__ import annotations

from typing import Any

import httpx

from parley_common.channels import ViberChannel
from parley_outbound.adapters.providers.base import ProviderFailure, SendResult, json_body, post_json
from parley_outbound.domain.outgoing import Outgoing
from parley_outbound.domain.provider_errors import classify_http, classify_viber


class ViberAdapter:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def send(self, channel: ViberChannel, message: Outgoing) -> SendResult:
        headers = {"X-Viber-Auth-Token": channel.auth_token.get_secret_value()}
        response = await post_json(self._client, f"{channel.api_base}/send_message", viber_body(channel, message),
                                   headers)
        if response.status_code >= 400:
            raise ProviderFailure(classify_http(response.status_code), str(response.status_code))
        body = json_body(response)
        status = int(body.get("status", -1))
        if status != 0:
            raise ProviderFailure(classify_viber(status), str(status), str(body.get("status_message", "")) or None)
        return SendResult(str(body["message_token"]))


def viber_body(channel: ViberChannel, message: Outgoing) -> dict[str, Any]:
    sender: dict[str, Any] = {"name": channel.sender_name}
    if channel.sender_avatar:
        sender["avatar"] = channel.sender_avatar
    body: dict[str, Any] = {"receiver": message.recipient, "min_api_version": 1, "sender": sender,
                            "tracking_data": message.message_id}
    if message.media_url is None:
        body.update(type="text", text=message.text or "")
    elif message.media_kind == "image":
        body.update(type="picture", media=message.media_url, text=message.text or "")
    else:
        body.update(type="file", media=message.media_url, file_name=message.media_url.rsplit("/", 1)[-1], size=0)
    return body
