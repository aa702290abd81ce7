"""WhatsApp Business Management API: list a WABA's message templates (reference/channels.md §1.12)."""

from __future__ import annotations

from typing import Any

import httpx

from parley_common.channels import WhatsAppChannel
from parley_outbound.adapters.providers.base import ProviderFailure
from parley_outbound.domain.provider_errors import classify_http

_STATUS = {"APPROVED": "approved", "PENDING": "pending", "IN_APPEAL": "pending", "REJECTED": "rejected",
           "PAUSED": "paused"}
MAX_PAGES = 50


async def fetch_templates(client: httpx.AsyncClient, channel: WhatsAppChannel) -> list[dict[str, Any]]:
    """Every template of the channel's WABA, in Parley's template shape."""
    url: str | None = f"{channel.graph_api_base}/{channel.waba_id}/message_templates"
    params: dict[str, str] | None = {"fields": "name,status,category,language,components", "limit": "100"}
    headers = {"Authorization": f"Bearer {channel.access_token.get_secret_value()}"}
    templates: list[dict[str, Any]] = []
    for _ in range(MAX_PAGES):
        if url is None:
            break
        response = await client.get(url, params=params, headers=headers)
        if response.status_code >= 400:
            raise ProviderFailure(classify_http(response.status_code), str(response.status_code))
        page = response.json()
        templates.extend(from_meta(item) for item in page.get("data", []))
        url, params = (page.get("paging") or {}).get("next"), None
    return templates


def from_meta(item: dict[str, Any]) -> dict[str, Any]:
    template: dict[str, Any] = {
        "name": item["name"], "language": item["language"], "category": str(item.get("category", "")).lower(),
        "status": _STATUS.get(str(item.get("status", "")).upper(), "disabled"), "body": "", "header": None,
        "footer": None, "buttons": [], "variables": [], "provider_id": item.get("id"),
    }
    for component in item.get("components", []):
        kind = str(component.get("type", "")).upper()
        if kind == "HEADER":
            template["header"] = {"format": str(component.get("format", "TEXT")).lower(),
                                  "text": component.get("text")}
        elif kind == "BODY":
            template["body"] = component.get("text", "")
        elif kind == "FOOTER":
            template["footer"] = component.get("text")
        elif kind == "BUTTONS":
            template["buttons"] = [from_meta_button(button) for button in component.get("buttons", [])]
    return template


def from_meta_button(button: dict[str, Any]) -> dict[str, Any]:
    """A button definition: its type decides the value it takes at send (a url with {{1}}: the suffix)."""
    return {"type": str(button.get("type", "")).lower(), "text": button.get("text", ""), "url": button.get("url"),
            "phone_number": button.get("phone_number")}
