"""Settings of the contacts service (environment prefix PARLEY_CONTACTS_; shared infrastructure under PARLEY_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from parley_common.settings import ServiceSettings


class ContactsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PARLEY_CONTACTS_", extra="ignore")

    port: int = 8002
    consumer_group: str = "parley-contacts"
    batch_max: int = Field(default=200, ge=1, le=5000, description="records of one consumer batch at most; a "
                                                                      "batch's inbound messages share bulk writes")
    batch_linger_ms: int = Field(
        default=100, ge=0, le=1000, description="how long a batch of the events lane that is not full waits for more "
        "records: at a low rate, several messages share the batch's round trips (a contact is created that much later)")
    profile_lookups_per_second: float = Field(
        default=5.0, gt=0, le=100, description="Graph API profile look-ups (Messenger, Instagram) per channel and "
                                              "replica; the rest wait their turn on the background consumer")
    profile_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
