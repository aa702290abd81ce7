"""Wiring of the contacts service: settings, broker, handlers, HTTP app."""

from __future__ import annotations

from fastapi import FastAPI

from parley_common.runtime import Runtime, run_service
from parley_common.service import build_service
from parley_contacts.settings import ContactsSettings

SERVICE = "contacts"


def create_app(settings: ContactsSettings) -> FastAPI:
    runtime = Runtime(SERVICE, settings.infra, use_mongo=True, use_redis=False)
    return build_service(
        service=SERVICE,
        title="Parley contacts",
        description="contacts: identities, card fields, labels, search",
        infra=settings.infra,
        routers=[],
        readiness=runtime.readiness(),
        broker=runtime.broker,
        on_shutdown=[runtime.close],
    )


def main() -> None:
    run_service("parley-contacts", ContactsSettings, create_app)
