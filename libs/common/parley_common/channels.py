"""Channel configuration: one YAML or JSON file (a Kubernetes Secret in production, a generated local file in
`make run`), validated at start so no service needs another to know its channels."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from parley_common.errors import ApiError
from parley_common.events.common import ChannelType

_ID_PATTERN = r"^[a-zA-Z0-9_.-]{1,64}$"


class _Channel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=_ID_PATTERN)
    tenant_id: str = Field(pattern=_ID_PATTERN)
    name: str | None = None
    bot_id: str | None = Field(default=None, pattern=_ID_PATTERN,
                               description="the channel's default bot: it handles new conversations no routing "
                                           "rule matches (docs/bots.md)")
    bot_timeout_seconds: int | None = Field(default=None, ge=5, le=86_400,
                                            description="how long the default bot may leave a customer's message "
                                                        "unanswered (router's default: 120)")
    bot_fallback_team: str | None = Field(default=None, pattern=_ID_PATTERN,
                                          description="the team that takes over when the default bot does not "
                                                      "answer in time (else `default`)")
    previous_inbound_secrets: tuple[SecretStr, ...] = Field(
        default=(), max_length=2,
        description="earlier values of the secret that verifies this channel's webhooks (app_secret, "
                    "webhook_secret, auth_token, inbound_secret or secret), still accepted while a rotation "
                    "overlaps; remove them once the provider sends with the new one (docs/operations.md)")
    # The field holding the secret incoming webhooks are verified with (set by each channel type).
    inbound_secret_field: ClassVar[str]

    def inbound_secrets(self) -> tuple[str, ...]:
        """The secrets a webhook of this channel may be verified with: the current one first."""
        current: SecretStr = getattr(self, self.inbound_secret_field)
        return (current.get_secret_value(), *(old.get_secret_value() for old in self.previous_inbound_secrets))


class _MetaChannel(_Channel):
    inbound_secret_field = "app_secret"
    app_secret: SecretStr = Field(description="signs webhooks: X-Hub-Signature-256")
    verify_token: SecretStr = Field(description="the webhook subscription handshake token")
    graph_api_base: str = "https://graph.facebook.com/v23.0"


class WhatsAppChannel(_MetaChannel):
    type: Literal[ChannelType.WHATSAPP] = ChannelType.WHATSAPP
    phone_number_id: str
    waba_id: str | None = None
    access_token: SecretStr


class MessengerChannel(_MetaChannel):
    type: Literal[ChannelType.MESSENGER] = ChannelType.MESSENGER
    page_id: str
    page_access_token: SecretStr


class InstagramChannel(_MetaChannel):
    type: Literal[ChannelType.INSTAGRAM] = ChannelType.INSTAGRAM
    instagram_account_id: str
    page_access_token: SecretStr


class TelegramChannel(_Channel):
    inbound_secret_field = "webhook_secret"
    type: Literal[ChannelType.TELEGRAM] = ChannelType.TELEGRAM
    bot_token: SecretStr
    webhook_secret: SecretStr = Field(description="expected in X-Telegram-Bot-Api-Secret-Token")
    api_base: str = "https://api.telegram.org"


class ViberChannel(_Channel):
    inbound_secret_field = "auth_token"
    type: Literal[ChannelType.VIBER] = ChannelType.VIBER
    auth_token: SecretStr = Field(description="X-Viber-Auth-Token; also signs callbacks")
    sender_name: str = Field(max_length=28)
    sender_avatar: str | None = None
    welcome_message: str | None = Field(
        default=None, min_length=1, max_length=7000,
        description="answered to `conversation_started` (the one message Viber allows before a subscription)")
    api_base: str = "https://chatapi.viber.com/pa"


class EmailChannel(_Channel):
    inbound_secret_field = "inbound_secret"
    type: Literal[ChannelType.EMAIL] = ChannelType.EMAIL
    address: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    inbound_secret: SecretStr = Field(description="bearer secret the inbound mail relay presents")
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False


class SandboxChannel(_Channel):
    """A fake provider inside outbound: sends succeed at once and delivered/read come back through ingest."""

    inbound_secret_field = "secret"
    type: Literal[ChannelType.SANDBOX] = ChannelType.SANDBOX
    secret: SecretStr = Field(description="bearer secret on POST /webhooks/sandbox/{channel_id}")
    ingest_base_url: str = Field(default="http://127.0.0.1:8001", description="where the fake posts its callbacks")


AnyChannel = (WhatsAppChannel | MessengerChannel | InstagramChannel | TelegramChannel | ViberChannel | EmailChannel
              | SandboxChannel)

Channel = Annotated[
    WhatsAppChannel | MessengerChannel | InstagramChannel | TelegramChannel | ViberChannel | EmailChannel
    | SandboxChannel,
    Field(discriminator="type"),
]


class ChannelFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    channels: tuple[Channel, ...]

    @model_validator(mode="after")
    def _ids_are_unique(self) -> ChannelFile:
        seen: set[str] = set()
        for channel in self.channels:
            if channel.id in seen:
                raise ValueError(f"channel id {channel.id!r} appears twice")
            seen.add(channel.id)
        return self


class ChannelConfigError(Exception):
    """One line naming the file, the field and what is wrong with it."""


class ChannelNotOfTenant(Exception):
    """An event or request names a channel that does not exist, or that belongs to another tenant.

    `reason` is machine-readable: `unknown_channel` or `channel_of_another_tenant` (dead letters say which; HTTP
    answers say `unknown_channel` for both, so a caller learns nothing about other tenants' channels)."""

    def __init__(self, reason: str, channel_id: str, tenant_id: str) -> None:
        super().__init__(f"channel {channel_id!r} is not a channel of tenant {tenant_id!r} ({reason})")
        self.reason = reason
        self.channel_id = channel_id


class Channels:
    """The loaded channel file, looked up by id."""

    def __init__(self, channels: tuple[AnyChannel, ...]) -> None:
        self._by_id = {channel.id: channel for channel in channels}

    def get(self, channel_id: str) -> AnyChannel | None:
        return self._by_id.get(channel_id)

    def of_tenant(self, tenant_id: str, channel_id: str) -> AnyChannel:
        """The one check every consumer and API applies: `channel_id` exists and belongs to `tenant_id`."""
        channel = self._by_id.get(channel_id)
        if channel is None:
            raise ChannelNotOfTenant("unknown_channel", channel_id, tenant_id)
        if channel.tenant_id != tenant_id:
            raise ChannelNotOfTenant("channel_of_another_tenant", channel_id, tenant_id)
        return channel

    def for_caller(self, tenant_id: str, channel_id: str, status: int = 404) -> AnyChannel:
        """`of_tenant` for an HTTP API: `unknown_channel` (404, or 422 where the channel is a body field) for
        both a missing channel and another tenant's, so a caller learns nothing about other tenants."""
        try:
            return self.of_tenant(tenant_id, channel_id)
        except ChannelNotOfTenant:
            details = {"field": "channel_id"} if status == 422 else None
            raise ApiError(status, "unknown_channel", f"no channel {channel_id!r} in this tenant", details) from None

    def __iter__(self) -> Iterator[AnyChannel]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    @classmethod
    def parse(cls, data: object, origin: str = "<channels>") -> Channels:
        try:
            return cls(ChannelFile.model_validate(data).channels)
        except ValidationError as exc:
            raise ChannelConfigError(f"{origin}: {_describe(exc, data)}") from None

    @classmethod
    def load(cls, path: Path) -> Channels:
        try:
            text = path.read_text()
        except OSError as exc:
            raise ChannelConfigError(f"{path}: cannot read the channel file ({exc.strerror})") from None
        try:
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            kind = "JSON" if path.suffix == ".json" else "YAML"
            raise ChannelConfigError(f"{path}: not valid {kind} ({exc})") from None
        return cls.parse(data, str(path))


def _describe(exc: ValidationError, data: object) -> str:
    first = exc.errors()[0]
    parts = [str(part) for part in first["loc"]]
    # Name the channel by its id rather than its index, and drop the union's type tag from the path.
    if len(parts) >= 2 and parts[0] == "channels" and parts[1].isdigit() and isinstance(data, dict):
        index = int(parts[1])
        items = data.get("channels") or []
        channel_id = items[index].get("id") if index < len(items) and isinstance(items[index], dict) else None
        parts = [f"channels[{channel_id or index}]", *parts[3:]]
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{'.'.join(parts) or '<root>'}: {first['msg']}{more}"



def load_channels_or_exit(path: Path, program: str) -> Channels:
    """At service start: the channel file, or one line naming the bad field and exit code 2."""
    from parley_common.settings import fail_start

    try:
        return Channels.load(path)
    except ChannelConfigError as exc:
        fail_start(program, str(exc))
