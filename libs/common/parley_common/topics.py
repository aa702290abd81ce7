"""The topic registry: every topic's name, partitioning, retention and the events it carries.

A `namespace` (settings: PARLEY_NAMESPACE) prefixes every name so several deployments, or test runs,
can share one cluster without seeing each other's events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter

from parley_common.events.channels import ChannelUpdate
from parley_common.events.contacts import ContactsTopicEvent
from parley_common.events.conversations import AgentChanged, ConversationActionRequested, ConversationChanged
from parley_common.events.dlq import DeadLetter
from parley_common.events.inbound import (
    DeliveryStatusReported,
    EmailAttachmentReceived,
    MarketingPreferenceChanged,
    MessageReceived,
)
from parley_common.events.media import MediaTopicEvent, RetryMediaFetch
from parley_common.events.outbound import OutboundMessageUpdated, SendMessage
from parley_common.events.webhooks import WebhooksTopicEvent

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class Topic:
    base_name: str
    payload: Any  # the event model, or an annotated union of models discriminated on `type`
    partitions: int
    key: str
    description: str
    retention_ms: int = 7 * DAY_MS
    compacted: bool = False
    max_message_bytes: int = 1024 * 1024

    def name(self, namespace: str = "") -> str:
        return f"{namespace}.{self.base_name}" if namespace else self.base_name

    def adapter(self) -> TypeAdapter[Any]:
        """Strict: unknown fields refused, as producers build the events and docs/events publishes them."""
        return _adapter(self.base_name, self.payload)

    def parse(self, raw: bytes) -> Any:
        """Validate raw JSON bytes into this topic's event model as a tolerant reader: fields this version does
        not know (a newer producer's additive change) are ignored, known ones validated as strictly as ever;
        raises pydantic.ValidationError."""
        return self.adapter().validate_json(raw, extra="ignore")


_ADAPTERS: dict[str, TypeAdapter[Any]] = {}


def _adapter(name: str, payload: Any) -> TypeAdapter[Any]:
    if name not in _ADAPTERS:
        _ADAPTERS[name] = TypeAdapter(payload)
    return _ADAPTERS[name]


CONVERSATION_KEY = "tenant|channel_id|external_user_id"

INBOUND_MESSAGES = Topic(
    "parley.inbound.messages.v1", MessageReceived, 12, CONVERSATION_KEY,
    "Customer messages from every channel, normalised (ingest).",
)
INBOUND_STATUSES = Topic(
    "parley.inbound.statuses.v1", DeliveryStatusReported, 12, CONVERSATION_KEY,
    "Delivery statuses the channels report for messages we sent (ingest).",
)
INBOUND_ATTACHMENTS = Topic(
    "parley.inbound.attachments.v1", EmailAttachmentReceived, 6, CONVERSATION_KEY,
    "Bytes of inbound email attachments, ingest to media, never leaving the cluster.",
    retention_ms=3 * DAY_MS, max_message_bytes=36 * 1024 * 1024,
)
INBOUND_PREFERENCES = Topic(
    "parley.inbound.preferences.v1", MarketingPreferenceChanged, 12, CONVERSATION_KEY,
    "Customers stopping or resuming marketing messages (ingest); contacts and outbound keep the latest.",
    retention_ms=30 * DAY_MS,
)
CHANNEL_UPDATES = Topic(
    "parley.channels.updates.v1", ChannelUpdate, 12, "tenant|channel_id",
    "What providers say about the channels themselves: template status and quality, account and number health "
    "(ingest); outbound keeps its template store current.",
    retention_ms=30 * DAY_MS,
)
CONTACTS_EVENTS = Topic(
    "parley.contacts.events.v1", ContactsTopicEvent, 12,
    "tenant|contact|contact_id, or the identity's conversation key",
    "Contact created, updated, merged, blocked, unblocked, labelled (contacts).",
    retention_ms=30 * DAY_MS,
)
CONVERSATIONS_EVENTS = Topic(
    "parley.conversations.events.v1", ConversationChanged, 12, CONVERSATION_KEY,
    "Conversation lifecycle: opened, assigned, transferred, closed, reopened (router). At least once: a record "
    "can come again, e.g. `opened` re-announced after a crash, always with the same event_id: de-duplicate on "
    "event_id.",
)
AGENTS_EVENTS = Topic(
    "parley.agents.events.v1", AgentChanged, 12, "tenant|login",
    "Agents' team memberships as the router's directory holds them (router); compacted: the latest per agent.",
    compacted=True,
)
CONVERSATIONS_COMMANDS = Topic(
    "parley.conversations.commands.v1", ConversationActionRequested, 12, CONVERSATION_KEY,
    "Requests to the router from other services, e.g. outbound's after-send actions.",
)
OUTBOUND_REQUESTS = Topic(
    "parley.outbound.requests.v1", SendMessage, 12, CONVERSATION_KEY,
    "Send commands from the HTTP API, bots and other systems (outbound).",
)
OUTBOUND_MESSAGES = Topic(
    "parley.outbound.messages.v1", OutboundMessageUpdated, 12, CONVERSATION_KEY,
    "Outbound message lifecycle: queued, sent, delivered, read, failed, refused (outbound).",
)
MEDIA_EVENTS = Topic(
    "parley.media.events.v1", MediaTopicEvent, 12, CONVERSATION_KEY,
    "Attachments stored, failed, expired (media).",
)
MEDIA_RETRIES = Topic(
    "parley.media.retries.v1", RetryMediaFetch, 6, CONVERSATION_KEY,
    "Attachment downloads to try again later, with backoff (media to itself).",
)
DEAD_LETTERS = Topic(
    "parley.dlq.v1", DeadLetter, 3, "tenant",
    "Messages a consumer could not process: reason and original bytes. Nothing is dropped silently.",
    retention_ms=30 * DAY_MS,
)
WEBHOOKS_EVENTS = Topic(
    "parley.webhooks.events.v1", WebhooksTopicEvent, 3, "tenant",
    "Webhook subscriptions paused after repeated delivery failures, and resumed (hooks).",
    retention_ms=30 * DAY_MS,
)

ALL_TOPICS: tuple[Topic, ...] = (
    INBOUND_MESSAGES, INBOUND_STATUSES, INBOUND_ATTACHMENTS, CONTACTS_EVENTS, CONVERSATIONS_EVENTS, AGENTS_EVENTS,
    CONVERSATIONS_COMMANDS, OUTBOUND_REQUESTS, OUTBOUND_MESSAGES, MEDIA_EVENTS, DEAD_LETTERS,
    MEDIA_RETRIES, INBOUND_PREFERENCES, CHANNEL_UPDATES, WEBHOOKS_EVENTS,
)
