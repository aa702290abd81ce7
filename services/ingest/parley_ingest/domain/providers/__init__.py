"""Channel plugins by channel type."""

from __future__ import annotations

from parley_common.channels import Channels, WhatsAppChannel
from parley_common.events.common import ChannelType
from parley_ingest.domain.providers.base import ChannelPlugin
from parley_ingest.domain.providers.email import EmailPlugin
from parley_ingest.domain.providers.meta_messaging import MetaMessagingPlugin
from parley_ingest.domain.providers.sandbox import SandboxPlugin
from parley_ingest.domain.providers.telegram import TelegramPlugin
from parley_ingest.domain.providers.viber import ViberPlugin
from parley_ingest.domain.providers.whatsapp import WhatsAppPlugin

PLUGINS: dict[ChannelType, ChannelPlugin] = {
    ChannelType.WHATSAPP: WhatsAppPlugin(),
    ChannelType.MESSENGER: MetaMessagingPlugin(ChannelType.MESSENGER, "page"),
    ChannelType.INSTAGRAM: MetaMessagingPlugin(ChannelType.INSTAGRAM, "instagram"),
    ChannelType.TELEGRAM: TelegramPlugin(),
    ChannelType.VIBER: ViberPlugin(),
    ChannelType.EMAIL: EmailPlugin(),
    ChannelType.SANDBOX: SandboxPlugin(),
}


def plugins_for(channels: Channels) -> dict[ChannelType, ChannelPlugin]:
    """The plugins with what they need to know about the configured channels (WhatsApp: numbers by id)."""
    numbers = {c.phone_number_id: c for c in channels if isinstance(c, WhatsAppChannel)}
    return {**PLUGINS, ChannelType.WHATSAPP: WhatsAppPlugin(numbers)}
