"""Enumerations shared by several events."""

from __future__ import annotations

from enum import StrEnum


class ChannelType(StrEnum):
    WHATSAPP = "whatsapp"
    MESSENGER = "messenger"
    INSTAGRAM = "instagram"
    TELEGRAM = "telegram"
    VIBER = "viber"
    EMAIL = "email"
    SANDBOX = "sandbox"  # a local fake provider for demos and tests (no real account)


class SenderKind(StrEnum):
    """Who wrote an outbound message: the window rules differ for humans and automation."""

    HUMAN = "human"
    BOT = "bot"
    SYSTEM = "system"
