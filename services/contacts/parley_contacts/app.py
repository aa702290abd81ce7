"""Wiring of the contacts service: settings, broker, handlers, HTTP app."""

from __future__ import annotations

from fastapi import FastAPI

from parley_common.channels import Channels, load_channels_or_exit
from parley_common.clock import Clock, SystemClock
from parley_common.consumer_groups import ConsumerGroup, Reads, consume_group
from parley_common.runtime import Runtime, run_service
from parley_common.service import build_service, declare_published
from parley_common.topics import CONTACTS_EVENTS, DEAD_LETTERS, INBOUND_MESSAGES, INBOUND_PREFERENCES
from parley_common.visibility_store import VisibilityProjection, visibility_reads
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
# The profile look-ups' lane, idle while the events lane is busy, is asked twice a second instead of ~25 (with both
# idle, the process's one idle fetch asks for both every 40 ms: kafka_seams.IdleWatch): a new card's name may come
# half a second later, and the look-ups wait their turn at the Graph API's rate anyway.
PROFILES_IDLE_PAUSE_MS = 500


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
    inbound = InboundHandler(SightingsStore(collections), runtime.publisher, clock.now)
    wire_consumers(runtime, settings, channels, inbound, PreferenceHandler(ContactsRepository(collections)),
                   profiles, visibility)
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
        on_shutdown=[graph.close, pictures.close, runtime.close],
    )
    app.state.collections = collections
    app.state.runtime = runtime
    return app


def wire_consumers(runtime: Runtime, settings: ContactsSettings, channels: Channels, inbound: InboundHandler,
                   preferences: PreferenceHandler, profiles: ProfileLookups, visibility: VisibilityProjection) -> None:
    """Two consumer groups: the events contacts keeps (inbound messages, preferences, who may see a customer),
    and the profile look-ups apart — they wait their turn at the Graph API's rate (`profile_lookups_per_second`),
    minutes for a burst of new Messenger customers, and inbound messages must not wait behind them. Until issue
    17 each topic had a group of its own: their offsets are adopted once (parley_common.group_offsets)."""
    prefix = settings.consumer_group
    events = ConsumerGroup(f"{prefix}.events", (
        Reads(INBOUND_MESSAGES, inbound, whole_batch=True, formerly=(prefix,)),
        Reads(INBOUND_PREFERENCES, preferences, formerly=(f"{prefix}-preferences",)),
        *visibility_reads(visibility, prefix),
    ), max_records=settings.batch_max, linger_ms=settings.batch_linger_ms)
    lookups = ConsumerGroup(f"{prefix}.profiles", (
        Reads(CONTACTS_EVENTS, profiles.on_contact_event, formerly=(f"{prefix}-profiles",)),
    ), why="Profile look-ups wait their turn at the Graph API's rate: a group of their own, so inbound messages "
           "never wait behind them.", idle_pause_ms=PROFILES_IDLE_PAUSE_MS)
    for group in (events, lookups):
        consume_group(runtime.broker, group, namespace=settings.infra.namespace, publisher=runtime.publisher,
                      service=SERVICE, channels=channels)


def main() -> None:
    run_service("parley-contacts", ContactsSettings, create_app)
