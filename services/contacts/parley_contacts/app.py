"""Wiring of the contacts service: settings, broker, handlers, HTTP app."""

from __future__ import annotations

from fastapi import FastAPI

from parley_common.channels import Channels, load_channels_or_exit
from parley_common.clock import Clock, SystemClock
from parley_common.kafka import subscribe, subscribe_batch
from parley_common.runtime import Runtime, run_service
from parley_common.service import build_service, declare_published
from parley_common.topics import CONTACTS_EVENTS, DEAD_LETTERS, INBOUND_MESSAGES, INBOUND_PREFERENCES
from parley_common.visibility_store import VisibilityProjection, follow_visibility
from parley_contacts.adapters.collections import Collections
from parley_contacts.adapters.contacts_repo import CommentsRepository, ContactsRepository, VocabularyRepository
from parley_contacts.adapters.graph_profiles import GraphProfiles
from parley_contacts.adapters.pictures import PictureFetcher
from parley_contacts.adapters.sightings import SightingsStore
from parley_contacts.handlers.card_service import ContactsService
from parley_contacts.handlers.http import Services, contacts_router
from parley_contacts.handlers.inbound import InboundHandler
from parley_contacts.handlers.notes import CommentsService, FieldsService
from parley_contacts.handlers.preferences import PreferenceHandler
from parley_contacts.handlers.profiles import ProfileLookups
from parley_contacts.settings import ContactsSettings

SERVICE = "contacts"


def create_app(settings: ContactsSettings, clock: Clock | None = None, channels: Channels | None = None) -> FastAPI:
    clock = clock or SystemClock()
    channels = channels if channels is not None else load_channels_or_exit(settings.infra.channels_file,
                                                                           "parley-contacts")
    runtime = Runtime(SERVICE, settings.infra, use_mongo=True, use_redis=False)
    declare_published(runtime.broker, settings.infra.namespace, CONTACTS_EVENTS, DEAD_LETTERS)
    collections = Collections(runtime.db)
    visibility = VisibilityProjection(runtime.db)
    contacts = ContactsService(ContactsRepository(collections), runtime.publisher, clock, channels, visibility)
    vocabulary = VocabularyRepository(collections)
    graph = GraphProfiles(settings.profile_lookups_per_second, settings.profile_timeout_seconds)
    pictures = PictureFetcher(settings.profile_timeout_seconds)
    profiles = ProfileLookups(contacts, ContactsRepository(collections), graph, runtime.publisher, channels)
    services = Services(contacts=contacts, fields=FieldsService(contacts, vocabulary, clock),
                        comments=CommentsService(contacts, CommentsRepository(collections), clock),
                        vocabulary=vocabulary, profiles=profiles, pictures=pictures)
    inbound = InboundHandler(SightingsStore(collections), runtime.publisher, clock.now,
                             max_batch=settings.batch_max, max_wait=settings.batch_wait_ms / 1000)
    subscribe_batch(runtime.broker, INBOUND_MESSAGES, group_id=settings.consumer_group,
                    namespace=settings.infra.namespace, handle=inbound,
                    publisher=runtime.publisher, service=SERVICE, channels=channels, max_records=settings.batch_max,
                    concurrency=settings.consumer_concurrency)
    subscribe(runtime.broker, INBOUND_PREFERENCES, group_id=f"{settings.consumer_group}-preferences",
              namespace=settings.infra.namespace, handle=PreferenceHandler(ContactsRepository(collections)),
              publisher=runtime.publisher, service=SERVICE, channels=channels)
    subscribe(runtime.broker, CONTACTS_EVENTS, group_id=f"{settings.consumer_group}-profiles",
              namespace=settings.infra.namespace, handle=profiles.on_contact_event,
              publisher=runtime.publisher, service=SERVICE, channels=channels)
    follow_visibility(runtime.broker, visibility, settings.consumer_group, namespace=settings.infra.namespace,
                      publisher=runtime.publisher, service=SERVICE, channels=channels)
    app = build_service(
        service=SERVICE,
        title="Parley contacts",
        description="contacts: identities, card fields, labels, comments, search, export",
        infra=settings.infra,
        routers=[contacts_router(services)],
        readiness=runtime.readiness(),
        broker=runtime.broker,
        replica_leases=runtime.replica_leases,
        on_startup=[collections.ensure_indexes],
        on_shutdown=[inbound.batcher.close, graph.close, pictures.close, runtime.close],
    )
    app.state.collections = collections
    app.state.runtime = runtime
    return app


def main() -> None:
    run_service("parley-contacts", ContactsSettings, create_app)
