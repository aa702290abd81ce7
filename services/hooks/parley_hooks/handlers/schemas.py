"""Request and response bodies of /v1/subscriptions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from parley_hooks.domain.events import event_types
from parley_hooks.domain.targets import MAX_URL_LENGTH

Url = Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL_LENGTH)]
# Documented as the list of types there are; any other is answered 422 unknown_event_type.
EventType = Annotated[str, StringConstraints(min_length=1, max_length=128),
                      Field(json_schema_extra={"enum": sorted(event_types())})]
EventTypes = Annotated[list[EventType], Field(min_length=1, max_length=64)]
Secret = Annotated[str, StringConstraints(min_length=32, max_length=256, pattern=r"^[\x21-\x7e]+$")]
Description = Annotated[str, StringConstraints(max_length=500)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubscriptionCreate(Body):
    url: Url = Field(description="https:// endpoint receiving the events (POST, structured CloudEvents)")
    event_types: EventTypes = Field(description="CloudEvents types, e.g. parley.message.received (docs/webhooks.md)")
    secret: Secret | None = Field(default=None, description="the HMAC key of the signatures (32-256 printable "
                                                            "characters); generated when absent")
    description: Description | None = None


class SubscriptionUpdate(Body):
    url: Url | None = None
    event_types: EventTypes | None = None
    secret: Secret | None = Field(default=None, description="a new signing key, used from the next delivery on")
    description: Description | None = None
    status: Literal["active", "paused"] | None = Field(
        default=None, description="paused stops deliveries (events are kept); active resumes them in order")


class Subscription(BaseModel):
    id: str
    url: str
    event_types: list[str]
    description: str | None = None
    status: Literal["active", "paused"]
    created_at: datetime
    updated_at: datetime
    created_by: str
    paused_at: datetime | None = None
    paused_reason: str | None = Field(default=None, description="delivery_failures or by_request")
    last_error: str | None = Field(default=None, description="of the delivery that paused it")
    pending: int = Field(description="deliveries waiting (in order per conversation key)")


class SubscriptionCreated(Subscription):
    secret: str = Field(description="the signing key: shown only here")


class SubscriptionList(BaseModel):
    items: list[Subscription]


class Attempt(BaseModel):
    at: datetime
    attempt: int
    status_code: int | None = None
    error: str | None = Field(default=None, description="http_<status>, timeout, connection_failed, "
                                                        "address_not_allowed; null when delivered")
    duration_ms: int


class Delivery(BaseModel):
    id: str
    subscription_id: str
    event_id: str
    event_type: str
    key: str = Field(description="the conversation key: deliveries of one key go in order")
    status: Literal["pending", "delivered"]
    attempts: int
    failures: int = Field(description="failed attempts in a row")
    next_attempt_at: datetime | None = None
    created_at: datetime
    delivered_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    replay_of: str | None = Field(default=None, description="the delivery this one replays")
    log: list[Attempt] = Field(default_factory=list, description="the latest attempts (at most 20)")


class DeliveryWithEvent(Delivery):
    event: dict[str, Any] = Field(description="the CloudEvent as delivered")


class DeliveryList(BaseModel):
    items: list[Delivery]
    next_before: datetime | None = Field(default=None, description="pass as `before` for the next (older) page")


class ReplayWindow(Body):
    since: AwareDatetime
    until: AwareDatetime
    event_types: list[EventType] | None = Field(default=None, max_length=64)


class Replayed(BaseModel):
    replayed: int = Field(description="deliveries queued again (at most 1,000 per call: the oldest first)")
    items: list[str] = Field(description="their new delivery ids")
