"""Settings of the contacts service (environment prefix PARLEY_CONTACTS_; shared infrastructure under PARLEY_)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from parley_common.settings import ServiceSettings


class ContactsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PARLEY_CONTACTS_", extra="ignore")

    port: int = 8002
