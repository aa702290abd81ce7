"""Viber REST bot API: send_message (reference/channels.md §4.6, status codes §4.7).

Viber takes media only as a URL it fetches itself (`picture`/`file` with `media`; a file also needs its
`size` and `file_name`): there is no upload endpoint. So a stored attachment goes as media's signed download
link, freshly signed per send — which means a deployment with Viber channels must expose media's signed
`/v1/media/{id}/content` links publicly (PARLEY_MEDIA_PUBLIC_BASE_URL), unlike the other channels."""

from __future__ import annotations

from typing import Any

import httpx

from parley_common.channels import ViberChannel
from parley_outbound.adapters.media_fetch import MediaInfo
from parley_outbound.adapters.providers.base import ProviderFailure, SendResult, json_body, post_json
from parley_outbound.adapters.providers.uploads import ProviderMedia
from parley_outbound.domain.outgoing import Outgoing
from parley_outbound.domain.provider_errors import classify_http, classify_viber


class ViberAdapter:
    def __init__(self, client: httpx.AsyncClient, media: ProviderMedia | None = None) -> None:
        self._client = client
        self._media = media

    async def send(self, channel: ViberChannel, message: Outgoing) -> SendResult:
        info = None
        if self._media is not None and message.media_id is not None:
            info = await self._media.fetcher.describe(channel.tenant_id, message.media_id)
        headers = {"X-Viber-Auth-Token": channel.auth_token.get_secret_value()}
        response = await post_json(self._client, f"{channel.api_base}/send_message",
                                   viber_body(channel, message, info), headers)
        if response.status_code >= 400:
            raise ProviderFailure(classify_http(response.status_code), str(response.status_code))
        body = json_body(response)
        status = int(body.get("status", -1))
        if status != 0:
            raise ProviderFailure(classify_viber(status), str(status), str(body.get("status_message", "")) or None)
        return SendResult(str(body["message_token"]))


def viber_body(channel: ViberChannel, message: Outgoing, info: MediaInfo | None = None) -> dict[str, Any]:
    sender: dict[str, Any] = {"name": channel.sender_name}
    if channel.sender_avatar:
        sender["avatar"] = channel.sender_avatar
    body: dict[str, Any] = {"receiver": message.recipient, "min_api_version": 1, "sender": sender,
                            "tracking_data": message.message_id}
    link = info.download_url if info is not None else message.media_url
    if link is None:
        body.update(type="text", text=message.text or "")
    elif message.media_kind == "image":
        body.update(type="picture", media=link, text=message.text or "")
    elif message.media_kind == "video" and info is not None:  # Viber needs the video's size (§4.5)
        body.update(type="video", media=link, size=info.size_bytes, text=message.text or "")
    else:
        name = info.file_name if info is not None else link.split("?", 1)[0].rsplit("/", 1)[-1]
        body.update(type="file", media=link, file_name=name, size=info.size_bytes if info is not None else 0)
    return body
