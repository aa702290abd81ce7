"""The manifests follow the services' real code: the API Ingress routes every /v1 resource a service serves to
that service (webhooks to ingest), and KEDA watches exactly the (topic, consumer group) pairs each service
subscribes to — read from the service's OpenAPI document and its broker's subscribers, so neither can drift
unnoticed; the AsyncAPI document names every topic the service writes; and every PARLEY_* variable the manifests or
the compose file set is a setting the code reads."""

from __future__ import annotations

import ast
import importlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from pydantic_settings import BaseSettings

import parley_common.runtime
from parley_common.consumer_groups import groups_of
from parley_common.kafka import make_broker
from parley_common.mongo import mongo_client
from parley_common.redis import redis_client
from parley_common.settings import InfraSettings

REPO = Path(__file__).resolve().parents[2]
KEY = "k" * 32
CHANNELS = REPO / "deploy" / "k8s" / "overlays" / "dev" / "channels.dev.yaml"
SERVICE_NAMES = ["ingest", "contacts", "router", "outbound", "media", "hooks"]


def settings_type(service: str) -> type[BaseSettings]:
    module = importlib.import_module(f"parley_{service}.settings")
    return next(
        value
        for name, value in vars(module).items()
        if name.endswith("Settings") and name != "ServiceSettings" and isinstance(value, type)
    )


@dataclass
class Built:
    app: FastAPI
    broker: KafkaBroker
    stores: set[str]  # "mongodb", "redis": the clients its Runtime made


@pytest.fixture(scope="module")
def built() -> dict[str, Built]:
    """Each service's app as create_app builds it (nothing connects until the lifespan starts), with the Kafka
    broker and the store clients its Runtime made, caught on the way so they can be compared with the manifests."""
    result = {}
    with pytest.MonkeyPatch.context() as patch:
        for service in SERVICE_NAMES:
            brokers: list[KafkaBroker] = []
            stores: set[str] = set()

            def catch(*args: Any, _brokers: list[KafkaBroker] = brokers, **kwargs: Any) -> KafkaBroker:
                _brokers.append(make_broker(*args, **kwargs))
                return _brokers[-1]

            def noting(store: str, make: Any, _stores: set[str] = stores) -> Any:
                def wrapper(*args: Any, **kwargs: Any) -> Any:
                    _stores.add(store)
                    return make(*args, **kwargs)

                return wrapper

            patch.setattr(parley_common.runtime, "make_broker", catch)
            patch.setattr(parley_common.runtime, "mongo_client", noting("mongodb", mongo_client))
            patch.setattr(parley_common.runtime, "redis_client", noting("redis", redis_client))
            infra = InfraSettings(channels_file=CHANNELS, jwt_secret=KEY)  # type: ignore[arg-type]
            keys = {"signing_secret": KEY, "id_secret": KEY} if service == "media" else {}
            settings = settings_type(service)(infra=infra, **keys)
            app = importlib.import_module(f"parley_{service}.app").create_app(settings)
            assert len(brokers) == 1
            result[service] = Built(app, brokers[0], stores)
    return result


def served_prefixes(app: FastAPI) -> set[str]:
    """`/v1/<resource>` and `/webhooks` prefixes of the app's HTTP paths."""
    prefixes = set()
    for path in app.openapi()["paths"]:
        parts = path.split("/")
        if len(parts) > 2 and parts[1] == "v1":
            prefixes.add(f"/v1/{parts[2]}")
        elif len(parts) > 1 and parts[1] == "webhooks":
            prefixes.add("/webhooks")
    return prefixes


def subscriptions(broker: KafkaBroker) -> Counter[tuple[str, str]]:
    """(topic, consumer group) of every subscriber that joins a group, with the members one process runs; a
    group-less subscriber (each pod reads everything, e.g. router's live updates) has no lag to scale on."""
    return Counter(
        (topic, subscriber.group_id)
        for subscriber in broker.subscribers
        if getattr(subscriber, "group_id", None)
        for topic in subscriber.topic_names
    )


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_every_served_path_is_routed_to_its_service(
    services: ModuleType, built: dict[str, Built], service: str
) -> None:
    svc = next(s for s in services.SERVICES if s.name == service)
    assert served_prefixes(built[service].app) == set(svc.api_paths) | set(svc.webhook_paths), (
        f"update {service}'s paths in deploy/k8s/services.py and run python deploy/k8s/generate.py"
    )


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_keda_watches_the_groups_the_service_subscribes_with(
    services: ModuleType, built: dict[str, Built], service: str
) -> None:
    svc = next(s for s in services.SERVICES if s.name == service)
    declared = {(consumer.topic.base_name, consumer.group) for consumer in svc.consumes}
    assert set(subscriptions(built[service].broker)) == declared, (
        f"update {service}'s consumers in deploy/k8s/services.py and run python deploy/k8s/generate.py"
    )


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_the_user_may_read_the_former_groups_the_service_adopts_offsets_from(
    services: ModuleType, built: dict[str, Built], service: str
) -> None:
    """The groups each topic was read with before issue 17, which the service reads committed offsets from
    (parley_common.group_offsets): its KafkaUser describes exactly those."""
    svc = next(s for s in services.SERVICES if s.name == service)
    adopted: dict[tuple[str, str], set[str]] = {}
    for _, group in groups_of(built[service].broker):
        for reads in group.reads:  # a topic read twice in a group: its former groups together
            adopted.setdefault((reads.topic.base_name, group.name), set()).update(reads.formerly)
    assert adopted == {(consumer.topic.base_name, consumer.group): set(consumer.formerly) for consumer in svc.consumes}


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_the_autoscaler_counts_the_consumers_each_pod_runs(
    services: ModuleType, built: dict[str, Built], service: str
) -> None:
    """maxReplicaCount divides partitions by the members of each group in one pod (outbound's senders, router's
    intake): the table's `per_pod` must be what the service really starts."""
    svc = next(s for s in services.SERVICES if s.name == service)
    members = subscriptions(built[service].broker)
    assert {(c.topic.base_name, c.group): c.per_pod for c in svc.consumes} == dict(members)


def test_no_manifest_overrides_the_consumers_per_pod(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """The per-pod counts come from the settings' defaults; a ConfigMap changing them would skew maxReplicaCount."""
    per_pod_settings = {"PARLEY_OUTBOUND_SEND_CONSUMERS", "PARLEY_ROUTER_CONSUMERS"}
    for objects in rendered.values():
        for obj in objects:
            assert not per_pod_settings & set(obj.get("data", {})), obj["metadata"]["name"]
        for deployment in (obj for obj in objects if obj["kind"] == "Deployment"):
            env = {item["name"] for item in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
            assert not per_pod_settings & env


def test_prefixes_are_read_from_the_paths() -> None:
    app = FastAPI()
    app.get("/v1/contacts/{contact_id}")(lambda contact_id: None)
    app.post("/webhooks/{channel_type}/{channel_id}")(lambda channel_type, channel_id: None)
    app.get("/healthz")(lambda: None)
    assert served_prefixes(app) == {"/v1/contacts", "/webhooks"}


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_network_policy_lets_each_service_reach_the_stores_it_uses(
    services: ModuleType, built: dict[str, Built], service: str
) -> None:
    svc = next(s for s in services.SERVICES if s.name == service)
    declared = {store for store in (services.MONGODB, services.REDIS) if store in svc.talks_to}
    assert built[service].stores == declared


def setting_exists(variable: str) -> bool:
    for service in [*SERVICE_NAMES, "console"]:  # the console's settings: where the APIs it passes calls to are
        prefix = f"PARLEY_{service.upper()}_"
        if variable.startswith(prefix):
            return variable.removeprefix(prefix).lower() in settings_type(service).model_fields
    return variable.removeprefix("PARLEY_").lower() in InfraSettings.model_fields


def test_every_variable_set_is_a_setting(validate: ModuleType, rendered: dict[str, list[dict[str, Any]]]) -> None:
    variables = set()
    for objects in rendered.values():
        for obj in objects:
            if obj["kind"] in {"ConfigMap", "Secret"}:
                variables |= set(obj.get("data", {}))
        for deployment in validate.by_kind(objects, "Deployment").values():
            variables |= {item["name"] for item in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    compose = yaml.safe_load((REPO / "deploy" / "compose" / "compose.yaml").read_text())["services"]
    for service in SERVICE_NAMES:
        variables |= set(compose[service]["environment"])
    parley = {variable for variable in variables if variable.startswith("PARLEY_")}
    assert len(parley) > 10
    assert {variable for variable in parley if not setting_exists(variable)} == set()


def test_a_misspelt_variable_is_not_a_setting() -> None:
    assert setting_exists("PARLEY_MEDIA_S3_BUCKET")
    assert not setting_exists("PARLEY_MEDIA_S3_BUCKETS")
    assert not setting_exists("PARLEY_KAFKA_BOOTSTRAP_SERVERS")
    assert setting_exists("PARLEY_CONSOLE_ROUTER_URL")


def topics_named_in_code(service: str) -> set[str]:
    """Registry topics the service's package imports: every topic it could publish to or read."""
    topics = importlib.import_module("parley_common.topics")
    package = Path(importlib.import_module(f"parley_{service}").__file__ or "").parent
    named: set[str] = set()
    for source in package.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "parley_common.topics":
                named |= {getattr(topics, alias.name).base_name for alias in node.names
                          if isinstance(getattr(topics, alias.name, None), topics.Topic)}
    return named


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_the_kafka_user_may_use_every_topic_the_code_names(services: ModuleType, service: str) -> None:
    """The KafkaUser's ACLs (Read on `reads`, Write on `produces`) cover every registry topic the service's code
    imports and every record it dead-letters: a topic missing here would be refused by the broker in production
    only."""
    svc = next(s for s in services.SERVICES if s.name == service)
    allowed = {topic.base_name for topic in (*svc.reads, *svc.produces)}
    assert topics_named_in_code(service) | {"parley.dlq.v1"} <= allowed, (
        f"add the topic to {service}'s consumes/follows/produces in deploy/k8s/services.py")
    assert "parley.dlq.v1" in {topic.base_name for topic in svc.produces}


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_every_pod_wide_reader_is_allowed_to_read(services: ModuleType, built: dict[str, Built], service: str) -> None:
    """Subscribers without a group (each pod reads everything) need Read on their topic but no group ACL."""
    svc = next(s for s in services.SERVICES if s.name == service)
    groupless = {topic for subscriber in built[service].broker.subscribers
                 if not getattr(subscriber, "group_id", None) for topic in subscriber.topic_names}
    assert groupless == {topic.base_name for topic in svc.follows}


@pytest.mark.parametrize("service", SERVICE_NAMES)
async def test_the_asyncapi_document_names_every_topic_the_service_writes(services: ModuleType,
                                                                         built: dict[str, Built],
                                                                         service: str) -> None:
    """Its `produces` (the KafkaUser's Write ACL, held to the code above) are the document's send operations, so a
    subscriber finds each topic's producer and event schema there (parley_common.service.declare_published)."""
    svc = next(s for s in services.SERVICES if s.name == service)
    route = next(route for route in built[service].app.routes if getattr(route, "path", "") == "/asyncapi.json")
    document = await route.endpoint()  # type: ignore[attr-defined]
    sent = {operation["channel"]["$ref"].rsplit("/", 1)[-1] for operation in document["operations"].values()
            if operation["action"] == "send"}
    assert sent == {topic.base_name for topic in svc.produces}
