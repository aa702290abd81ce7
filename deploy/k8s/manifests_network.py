"""NetworkPolicies: Parley pods accept traffic only from the ingress controller and Prometheus (and the API
services from the console's pods), and reach only DNS, Kafka, MongoDB, Redis, object storage, (outbound, media)
the providers' public APIs, (hooks) the subscribers' public endpoints and (the console) the services' APIs.

The peers below assume the common in-cluster layout (Strimzi in namespace `kafka`, MongoDB in `mongodb`,
Redis in `redis`, ingress-nginx, Prometheus in `monitoring`); docs/deploy.md shows how to patch them."""

from __future__ import annotations

from typing import Any

from services import (
    CONSOLE,
    KAFKA,
    MONGODB,
    OBJECT_STORAGE,
    PARLEY_APIS,
    PROVIDER_APIS,
    REDIS,
    SERVICES,
    WEBHOOK_RECEIVERS,
    Service,
)

PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]


def _namespace(name: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


def _public_internet() -> dict[str, Any]:
    return {"ipBlock": {"cidr": "0.0.0.0/0", "except": PRIVATE_RANGES}}


def _ports(*numbers: int, protocol: str = "TCP") -> list[dict[str, Any]]:
    return [{"protocol": protocol, "port": number} for number in numbers]


EGRESS: dict[str, dict[str, Any]] = {
    KAFKA: {"to": [_namespace("kafka")], "ports": _ports(9092, 9093)},
    MONGODB: {"to": [_namespace("mongodb")], "ports": _ports(27017)},
    REDIS: {"to": [_namespace("redis")], "ports": _ports(6379, 26379)},  # 26379: Sentinel
    OBJECT_STORAGE: {"to": [_public_internet()], "ports": _ports(443)},
    PROVIDER_APIS: {"to": [_public_internet()], "ports": _ports(443)},
    # Subscribers choose their port; private ranges stay closed here too (hooks also refuses them itself).
    WEBHOOK_RECEIVERS: {"to": [_public_internet()]},
}
DNS = {
    "to": [{**_namespace("kube-system"), "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
    "ports": _ports(53) + _ports(53, protocol="UDP"),
}


def _pods(*apps: str) -> dict[str, Any]:
    return {"podSelector": {"matchExpressions": [
        {"key": "app.kubernetes.io/name", "operator": "In", "values": list(apps)}]}}


def _console_apis() -> list[Service]:
    return [svc for svc in SERVICES if svc.api_paths and svc.in_console]


EGRESS[PARLEY_APIS] = {"to": [_pods(*(svc.app for svc in _console_apis()))],
                       "ports": _ports(*(svc.port for svc in _console_apis()))}


def _egress(svc: Service) -> list[dict[str, Any]]:
    rules = [DNS]
    for peer in svc.talks_to:
        if EGRESS[peer] not in rules:  # object storage and providers share one rule
            rules.append(EGRESS[peer])
    return rules


def _ingress(svc: Service) -> list[dict[str, Any]]:
    port = _ports(svc.port)
    scrape = {"from": [_namespace("monitoring")], "ports": port}
    if not (svc.webhook_paths or svc.api_paths or svc.web_paths):
        return [scrape]
    rules = [{"from": [_namespace("ingress-nginx")], "ports": port}, scrape]
    if svc.api_paths and svc.in_console:
        rules.append({"from": [_pods(CONSOLE.app)], "ports": port})
    return rules


def network_policy(svc: Service) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": svc.app},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": svc.app}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": _ingress(svc),
            "egress": _egress(svc),
        },
    }


def default_deny() -> dict[str, Any]:
    """Anything labelled part of Parley that no policy above allows is refused, in and out."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "parley-default-deny"},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "parley"}},
            "policyTypes": ["Ingress", "Egress"],
        },
    }
