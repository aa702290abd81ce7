"""Ingest test kit: channels, signed webhook builders and the providers' documented payloads (fixtures/)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog

from parley_common.channels import Channels
from parley_common.events.common import ChannelType
from parley_ingest.domain.model import RequestContext

FIXTURES = Path(__file__).parent / "fixtures"
APP_SECRET = "meta-app-secret"
VERIFY_TOKEN = "verify-me"
TELEGRAM_SECRET = "tg-secret_42"
VIBER_TOKEN = "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9"
EMAIL_SECRET = "relay-secret"
SANDBOX_SECRET = "sandbox-secret"
PHONE_NUMBER_ID = "200000000000002"

CHANNELS = {
    "channels": [
        {"id": "wa-main", "tenant_id": "acme", "type": "whatsapp", "app_secret": APP_SECRET,
         "verify_token": VERIFY_TOKEN, "phone_number_id": PHONE_NUMBER_ID, "access_token": "wa-token"},
        {"id": "wa-second", "tenant_id": "acme", "type": "whatsapp", "app_secret": APP_SECRET,
         "verify_token": VERIFY_TOKEN, "phone_number_id": "200000000000099", "access_token": "wa-token"},
        {"id": "wa-other-app", "tenant_id": "globex", "type": "whatsapp", "app_secret": "another-app-secret",
         "verify_token": VERIFY_TOKEN, "phone_number_id": "200000000000077", "access_token": "wa-token"},
        {"id": "fb-page", "tenant_id": "acme", "type": "messenger", "app_secret": APP_SECRET,
         "verify_token": VERIFY_TOKEN, "page_id": "300000000000003", "page_access_token": "page-token"},
        {"id": "ig-shop", "tenant_id": "acme", "type": "instagram", "app_secret": APP_SECRET,
         "verify_token": VERIFY_TOKEN, "instagram_account_id": "17800000000000001", "page_access_token": "pt"},
        {"id": "tg-bot", "tenant_id": "acme", "type": "telegram", "bot_token": "123456:ABC-DEF",
         "webhook_secret": TELEGRAM_SECRET},
        {"id": "viber-bot", "tenant_id": "acme", "type": "viber", "auth_token": VIBER_TOKEN, "sender_name": "Acme"},
        {"id": "viber-welcome", "tenant_id": "acme", "type": "viber", "auth_token": VIBER_TOKEN, "sender_name": "Acme",
         "sender_avatar": "https://cdn.acme.example/logo.jpg", "welcome_message": "Hi! Write to us any time."},
        {"id": "mail", "tenant_id": "acme", "type": "email", "address": "support@acme.example",
         "inbound_secret": EMAIL_SECRET},
        {"id": "sb", "tenant_id": "acme", "type": "sandbox", "secret": SANDBOX_SECRET},
    ]
}


class Kit:
    channels = Channels.parse(CHANNELS)
    app_secret = APP_SECRET
    verify_token = VERIFY_TOKEN
    telegram_secret = TELEGRAM_SECRET
    viber_token = VIBER_TOKEN
    email_secret = EMAIL_SECRET
    sandbox_secret = SANDBOX_SECRET

    @staticmethod
    def fixture(name: str) -> Any:
        return json.loads((FIXTURES / name).read_text())

    @staticmethod
    def eml(name: str) -> bytes:
        return (FIXTURES / name).read_bytes()

    @staticmethod
    def whatsapp(messages: list[dict[str, Any]] = (), statuses: list[dict[str, Any]] = (),  # type: ignore[assignment]
                 contacts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        value: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID},
        }
        if contacts is not None:
            value["contacts"] = contacts
        if messages:
            value["messages"] = list(messages)
        if statuses:
            value["statuses"] = list(statuses)
        return {"object": "whatsapp_business_account",
                "entry": [{"id": "100000000000001", "changes": [{"field": "messages", "value": value}]}]}

    @staticmethod
    def meta(webhook_object: str, *events: dict[str, Any]) -> dict[str, Any]:
        return {"object": webhook_object,
                "entry": [{"id": "300000000000003", "time": 1795939500123, "messaging": list(events)}]}

    @staticmethod
    def body(payload: Any) -> bytes:
        return json.dumps(payload).encode()

    @staticmethod
    def meta_headers(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
        signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return {"content-type": "application/json", "x-hub-signature-256": f"sha256={signature}"}

    @staticmethod
    def viber_headers(body: bytes, token: str = VIBER_TOKEN) -> dict[str, str]:
        signature = hmac.new(token.encode(), body, hashlib.sha256).hexdigest()
        return {"content-type": "application/json", "x-viber-content-signature": signature}

    @staticmethod
    def telegram_headers(secret: str = TELEGRAM_SECRET) -> dict[str, str]:
        return {"content-type": "application/json", "x-telegram-bot-api-secret-token": secret}

    @staticmethod
    def email_headers(secret: str = EMAIL_SECRET) -> dict[str, str]:
        return {"content-type": "message/rfc822", "authorization": f"Bearer {secret}"}

    @staticmethod
    def context(channel_type: ChannelType, channel_id: str) -> RequestContext:
        return RequestContext("acme", channel_id, channel_type, "corr-test", datetime(2026, 11, 27, 12, tzinfo=UTC))


@pytest.fixture
def kit() -> type[Kit]:
    return Kit


@pytest.fixture(autouse=True)
def _structlog_defaults() -> None:
    """A test elsewhere may leave structlog printing to a closed captured stream (tests/common's logging test
    does, in a shared session): start every ingest test from structlog's defaults."""
    structlog.reset_defaults()
