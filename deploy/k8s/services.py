"""What Kubernetes needs to know about each Parley service: its port, the topics it consumes (KEDA scales on
their lag), the stores it talks to (NetworkPolicy egress), the HTTP paths the Ingress routes to it, its size.

The manifests in base/ are generated from this table and the topic registry by generate.py; edit here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic_settings import BaseSettings

from parley_common.topics import (
    AGENTS_EVENTS,
    CHANNEL_UPDATES,
    CONTACTS_EVENTS,
    CONVERSATIONS_COMMANDS,
    CONVERSATIONS_EVENTS,
    DEAD_LETTERS,
    INBOUND_ATTACHMENTS,
    INBOUND_MESSAGES,
    INBOUND_PREFERENCES,
    INBOUND_STATUSES,
    MEDIA_EVENTS,
    MEDIA_RETRIES,
    OUTBOUND_MESSAGES,
    OUTBOUND_REQUESTS,
    WEBHOOKS_EVENTS,
    Topic,
)
from parley_hooks.domain.events import PUBLIC_TOPICS
from parley_outbound.settings import OutboundSettings
from parley_router.settings import RouterSettings

KAFKA, MONGODB, REDIS, OBJECT_STORAGE, PROVIDER_APIS = "kafka", "mongodb", "redis", "object-storage", "provider-apis"
PARLEY_APIS = "parley-apis"  # the services' own HTTP APIs (the console passes its app's calls to them)
WEBHOOK_RECEIVERS = "webhook-receivers"  # subscribers' public HTTPS endpoints, any port (hooks)


@dataclass(frozen=True)
class Resources:
    cpu_request: str = "250m"
    memory_request: str = "256Mi"
    cpu_limit: str = "1"
    memory_limit: str = "512Mi"
    tmp_size: str = "256Mi"  # /tmp (emptyDir): uploads larger than 1 MB are spooled there


@dataclass(frozen=True)
class Consumer:
    """One subscription: KEDA reads the lag of `group` on `topic`. Must match the service's consumer groups
    (`parley_common.consumer_groups`; tests/deploy/test_follows_code.py compares them with the service's broker).
    `per_pod` members of the group run in each pod (the service's setting, e.g. outbound's send_consumers).
    `formerly`: the groups that read the topic before (issue 17): the service reads their committed offsets once
    (`parley_common.group_offsets`), so its user may describe them."""

    topic: Topic
    group: str
    per_pod: int = 1
    formerly: tuple[str, ...] = ()

    @property
    def max_pods(self) -> int:
        """Pods whose every member of the group gets a partition; one more would only add idle members."""
        return max(1, self.topic.partitions // self.per_pod)


def _setting_default(settings: type[BaseSettings], name: str) -> int:
    """A setting's default, so the table follows the code (the manifests do not override it: tests/deploy)."""
    return int(settings.model_fields[name].default)


@dataclass(frozen=True)
class Service:
    name: str
    port: int
    consumes: tuple[Consumer, ...]
    talks_to: tuple[str, ...]
    webhook_paths: tuple[str, ...] = ()  # public: providers call them (signature-checked)
    api_paths: tuple[str, ...] = ()  # JWT-protected /v1 APIs
    web_paths: tuple[str, ...] = ()  # pages people open in a browser (the console)
    in_console: bool = True  # the console passes its app's calls to this service's api_paths
    resources: Resources = Resources()
    produces: tuple[Topic, ...] = ()  # its KafkaUser may write these (tests/deploy compares with its code)
    follows: tuple[Topic, ...] = ()  # read by every pod without a consumer group (no lag, no group ACL)

    @property
    def app(self) -> str:
        return f"parley-{self.name}"

    @property
    def env_prefix(self) -> str:
        return f"PARLEY_{self.name.upper()}_"

    @property
    def reads(self) -> tuple[Topic, ...]:
        return tuple(dict.fromkeys([*(consumer.topic for consumer in self.consumes), *self.follows]))

    @property
    def max_replicas(self) -> int:
        """Partitions ÷ consumers per pod, for the tightest subscription: beyond it a pod would add only idle
        consumers on that topic, so its lag could never come down by scaling."""
        return min(consumer.max_pods for consumer in self.consumes)


def _group(group: str, *topics: Topic | tuple[Topic, str], per_pod: int = 1,
           formerly: Callable[[Topic], tuple[str, ...]] = lambda topic: ()) -> tuple[Consumer, ...]:
    """The (topic, group) pairs of one consumer group, each topic's former groups named by `formerly` (a topic
    given as (topic, former group) names its own)."""
    pairs = [(item, formerly(item)) if isinstance(item, Topic) else (item[0], (item[1],)) for item in topics]
    return tuple(Consumer(topic, group, per_pod, before) for topic, before in pairs)


def _visibility(former_prefix: str) -> tuple[tuple[Topic, str], ...]:
    """The visibility projection's topics, with the groups that read them until issue 17
    (parley_common.visibility_store.visibility_reads)."""
    return (CONVERSATIONS_EVENTS, f"{former_prefix}-visibility"), (AGENTS_EVENTS, f"{former_prefix}-agents")


def _router_former(topic: Topic) -> tuple[str, ...]:
    return (f"parley-router.{topic.base_name}",)


def _media_former(topic: Topic) -> tuple[str, ...]:
    return (f"parley-media.{topic.base_name.removeprefix('parley.')}",)


SERVICES: tuple[Service, ...] = (
    Service("ingest", 8001, consumes=(), talks_to=(KAFKA, MONGODB, REDIS), webhook_paths=("/webhooks",),
            produces=(INBOUND_MESSAGES, INBOUND_STATUSES, INBOUND_ATTACHMENTS, INBOUND_PREFERENCES, CHANNEL_UPDATES,
                      DEAD_LETTERS)),
    Service(
        "contacts", 8002,
        consumes=(*_group("parley-contacts.events", (INBOUND_MESSAGES, "parley-contacts"),
                          (INBOUND_PREFERENCES, "parley-contacts-preferences"), *_visibility("parley-contacts")),
                  *_group("parley-contacts.profiles", (CONTACTS_EVENTS, "parley-contacts-profiles"))),
        # the Graph API: Messenger / Instagram profiles (handlers/profiles.py)
        talks_to=(KAFKA, MONGODB, PROVIDER_APIS), api_paths=("/v1/contacts",), produces=(CONTACTS_EVENTS, DEAD_LETTERS),
    ),
    Service(
        "router", 8003,
        consumes=(*_group("parley-router.inbound", INBOUND_MESSAGES, formerly=_router_former,
                          per_pod=_setting_default(RouterSettings, "consumers")),
                  *_group("parley-router.events", OUTBOUND_MESSAGES, MEDIA_EVENTS, CONTACTS_EVENTS,
                          CONVERSATIONS_COMMANDS, formerly=_router_former)),
        talks_to=(KAFKA, MONGODB, REDIS),
        api_paths=("/v1/conversations", "/v1/agents", "/v1/teams", "/v1/routing", "/v1/supervisor"),
        produces=(CONVERSATIONS_EVENTS, AGENTS_EVENTS, DEAD_LETTERS),
        follows=(CONVERSATIONS_EVENTS, CONTACTS_EVENTS),  # the live streams: conversation changes, mentions
    ),
    Service(
        "outbound", 8004,
        consumes=(
            *_group("parley-outbound.events", (INBOUND_MESSAGES, "outbound-windows"),
                    (INBOUND_PREFERENCES, "outbound-preferences"), *_visibility("outbound"),
                    (INBOUND_STATUSES, "outbound-statuses"), (MEDIA_EVENTS, "outbound-media"),
                    (CHANNEL_UPDATES, "outbound-channel-updates")),
            Consumer(CONTACTS_EVENTS, "parley-outbound.events", formerly=("outbound-contacts", "outbound-audience")),
            *_group("parley-outbound.sends", (OUTBOUND_REQUESTS, "outbound-sender"),
                    per_pod=_setting_default(OutboundSettings, "send_consumers")),
        ),
        talks_to=(KAFKA, MONGODB, REDIS, PROVIDER_APIS),
        api_paths=("/v1/messages", "/v1/templates", "/v1/windows", "/v1/saved-replies", "/v1/broadcasts",
                   "/v1/channels"),
        produces=(OUTBOUND_MESSAGES, OUTBOUND_REQUESTS, CONVERSATIONS_COMMANDS, DEAD_LETTERS),
    ),
    Service(
        "media", 8005,
        consumes=(*_group("parley-media.events", INBOUND_MESSAGES, INBOUND_ATTACHMENTS, formerly=_media_former),
                  *_group("parley-media.events", *_visibility("parley-media")),
                  *_group("parley-media.retries", MEDIA_RETRIES, formerly=_media_former)),
        talks_to=(KAFKA, MONGODB, OBJECT_STORAGE, PROVIDER_APIS), api_paths=("/v1/media",),
        produces=(MEDIA_EVENTS, MEDIA_RETRIES, DEAD_LETTERS),
        resources=Resources(memory_request="384Mi", memory_limit="1Gi", tmp_size="2Gi"),
    ),
    Service(
        "hooks", 8007, consumes=_group("parley-hooks.events", *PUBLIC_TOPICS,
                                       formerly=lambda topic: (f"parley-hooks.{topic.base_name}",)),
        talks_to=(KAFKA, MONGODB, WEBHOOK_RECEIVERS), api_paths=("/v1/subscriptions",), in_console=False,
        produces=(WEBHOOKS_EVENTS, DEAD_LETTERS),
        resources=Resources(cpu_request="100m", memory_request="192Mi", memory_limit="384Mi", tmp_size="64Mi"),
    ),
    # No store and no topic: the web app, and its API calls passed to the four services above.
    Service(
        "console", 8006, consumes=(), talks_to=(PARLEY_APIS,), web_paths=("/",),
        resources=Resources(cpu_request="100m", memory_request="128Mi", memory_limit="256Mi", tmp_size="64Mi"),
    ),
)
CONSOLE = next(svc for svc in SERVICES if svc.name == "console")
