"""What the hooks service reports about webhook subscriptions (their deliveries carry the other topics' events)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from parley_common.events.envelope import Envelope


class WebhookSubscriptionEvent(Envelope):
    source = "parley/hooks"
    schema_version: Literal[1] = 1
    subscription_id: str
    description: str | None = Field(default=None, description="the subscription's own description (never its URL, "
                                                              "which may hold a token)")


class WebhookSubscriptionPaused(WebhookSubscriptionEvent):
    """Deliveries stopped: one failed `failures` times in a row. Events keep being kept for the subscription and
    go out, in order, once it is resumed (PATCH /v1/subscriptions/{id} with status active)."""

    type: Literal["parley.webhook.subscription_paused"] = "parley.webhook.subscription_paused"
    paused_at: AwareDatetime
    reason: str = Field(description="delivery_failures (the receiver kept failing) or by_request (a manager)")
    failures: int = 0
    last_error: str | None = Field(default=None, description="e.g. http_503, timeout, connection_failed")
    pending: int = Field(default=0, description="deliveries waiting when it was paused")


class WebhookSubscriptionResumed(WebhookSubscriptionEvent):
    type: Literal["parley.webhook.subscription_resumed"] = "parley.webhook.subscription_resumed"
    resumed_at: AwareDatetime
    actor: str = Field(description="the login that resumed it")


WebhooksTopicEvent = Annotated[WebhookSubscriptionPaused | WebhookSubscriptionResumed, Field(discriminator="type")]
