"""Outbound fixtures: the fake provider HTTP server, a real local SMTP server (aiosmtpd), channel config
pointing at them, and the outbound app on the real broker, database and cache."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

sys.path.insert(0, str(Path(__file__).parent))

from outbound_fakes import CollectingHandler, FakeProvider, free_port

from parley_common.channels import Channels

TENANT = "acme"


@pytest.fixture(scope="session")
def fake_provider() -> Iterator[FakeProvider]:
    provider = FakeProvider().start()
    yield provider
    provider.stop()


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[tuple[CollectingHandler, int]]:
    handler = CollectingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


def channel_config(base_url: str, smtp_port: int) -> Channels:
    meta = {"app_secret": "s", "verify_token": "v", "graph_api_base": f"{base_url}/graph"}
    return Channels.parse({"channels": [
        {"id": "wa-main", "tenant_id": TENANT, "type": "whatsapp", "phone_number_id": "1001", "waba_id": "9009",
         "access_token": "wa-token", **meta},
        {"id": "fb-page", "tenant_id": TENANT, "type": "messenger", "page_id": "2002",
         "page_access_token": "page-token", **meta},
        {"id": "ig-main", "tenant_id": TENANT, "type": "instagram", "instagram_account_id": "3003",
         "page_access_token": "page-token", **meta},
        {"id": "tg-bot", "tenant_id": TENANT, "type": "telegram", "bot_token": "123:ABC", "webhook_secret": "w",
         "api_base": f"{base_url}/telegram"},
        {"id": "viber-bot", "tenant_id": TENANT, "type": "viber", "auth_token": "vt", "sender_name": "Parley",
         "api_base": f"{base_url}/viber"},
        {"id": "mail", "tenant_id": TENANT, "type": "email", "address": "support@acme.example",
         "inbound_secret": "x", "smtp_host": "127.0.0.1", "smtp_port": smtp_port},
    ]})


@pytest.fixture(scope="session")
def channels(fake_provider: FakeProvider, smtp_server: tuple[CollectingHandler, int]) -> Channels:
    return channel_config(fake_provider.base_url, smtp_server[1])
