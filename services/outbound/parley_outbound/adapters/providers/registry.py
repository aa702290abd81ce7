"""Which adapter sends for which channel type, and the media source they upload stored attachments from."""

from __future__ import annotations

import httpx
from redis.asyncio import Redis

from parley_common.events.common import ChannelType
from parley_outbound.adapters.media_fetch import MediaFetcher
from parley_outbound.adapters.providers.base import ChannelAdapter
from parley_outbound.adapters.providers.email import EmailAdapter
from parley_outbound.adapters.providers.meta import MessengerAdapter
from parley_outbound.adapters.providers.sandbox import SandboxAdapter
from parley_outbound.adapters.providers.telegram import TelegramAdapter
from parley_outbound.adapters.providers.uploads import ProviderMedia, UploadCache
from parley_outbound.adapters.providers.viber import ViberAdapter
from parley_outbound.adapters.providers.whatsapp import WhatsAppAdapter
from parley_outbound.settings import OutboundSettings


def adapters(client: httpx.AsyncClient, media: ProviderMedia | None = None) -> dict[ChannelType, ChannelAdapter]:
    """Without `media`, attachments go by link (`Outgoing.media_url`) as before uploads existed."""
    messenger = MessengerAdapter(client, media)
    return {
        ChannelType.WHATSAPP: WhatsAppAdapter(client, media),
        ChannelType.MESSENGER: messenger,
        ChannelType.INSTAGRAM: messenger,
        ChannelType.TELEGRAM: TelegramAdapter(client, media),
        ChannelType.VIBER: ViberAdapter(client, media),
        ChannelType.EMAIL: EmailAdapter(media=media),
        ChannelType.SANDBOX: SandboxAdapter(client),
    }


def provider_media(settings: OutboundSettings, client: httpx.AsyncClient, redis: Redis) -> ProviderMedia:
    """Attachments read from the media service inside the cluster (`PARLEY_OUTBOUND_MEDIA_BASE_URL`)."""
    fetcher = MediaFetcher(client, settings.media_base_url, settings.infra.jwt_secret.get_secret_value())
    return ProviderMedia(fetcher, UploadCache(redis, settings.infra.redis_prefix()))
