"""Which adapter sends for which channel type."""

from __future__ import annotations

import httpx

from parley_common.events.common import ChannelType
from parley_outbound.adapters.providers.base import ChannelAdapter
from parley_outbound.adapters.providers.email import EmailAdapter
from parley_outbound.adapters.providers.meta import MessengerAdapter, WhatsAppAdapter
from parley_outbound.adapters.providers.sandbox import SandboxAdapter
from parley_outbound.adapters.providers.telegram import TelegramAdapter
from parley_outbound.adapters.providers.viber import ViberAdapter


def adapters(client: httpx.AsyncClient) -> dict[ChannelType, ChannelAdapter]:
    messenger = MessengerAdapter(client)
    return {
        ChannelType.WHATSAPP: WhatsAppAdapter(client),
        ChannelType.MESSENGER: messenger,
        ChannelType.INSTAGRAM: messenger,
        ChannelType.TELEGRAM: TelegramAdapter(client),
        ChannelType.VIBER: ViberAdapter(client),
        ChannelType.EMAIL: EmailAdapter(),
        ChannelType.SANDBOX: SandboxAdapter(client),
    }
