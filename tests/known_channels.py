"""The channel file of tests whose services only need to know which tenant each channel belongs to (router,
contacts): every consumer dead-letters an event naming an unknown channel or another tenant's."""

from __future__ import annotations

from typing import Any

from parley_common.channels import Channels


def whatsapp(channel_id: str, tenant_id: str) -> dict[str, Any]:
    return {"id": channel_id, "type": "whatsapp", "tenant_id": tenant_id, "phone_number_id": f"pn-{channel_id}",
            "access_token": "token", "app_secret": "secret", "verify_token": "verify"}


def viber(channel_id: str, tenant_id: str) -> dict[str, Any]:
    return {"id": channel_id, "type": "viber", "tenant_id": tenant_id, "auth_token": "token", "sender_name": "Acme"}


TEST_CHANNELS = Channels.parse({"channels": [
    whatsapp("wa-main", "acme"), whatsapp("wa-1", "acme"), whatsapp("wa-2", "acme"), whatsapp("wa", "acme"),
    viber("viber-1", "acme"), whatsapp("wa-globex", "globex"),
    {**whatsapp("wa-bot", "acme"), "bot_id": "welcome-bot", "bot_timeout_seconds": 30, "bot_fallback_team": "care"},
]})
