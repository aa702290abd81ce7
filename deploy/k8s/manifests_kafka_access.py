"""How each service authenticates to Kafka: a Strimzi `KafkaUser` per service (SCRAM-SHA-512 over TLS, simple
authorization: Read on the topics it consumes and the groups it consumes with, Write on the topics it
produces, nothing else), the container settings that use it, and the KEDA `TriggerAuthentication` that lets
the lag scaler read the same groups with the same user.

Strimzi's User Operator writes the user's password into a Secret named after the user (key `password`); the
cluster CA must be copied next to the pods as `parley-kafka-ca` (docs/deploy.md)."""

from __future__ import annotations

from typing import Any

from services import Service

KAFKA_CLUSTER = "parley-kafka"  # the Strimzi Kafka resource's name; overlays may relabel
CLUSTER_CA_SECRET = "parley-kafka-ca"  # a copy of Strimzi's <cluster>-cluster-ca-cert (docs/deploy.md)
CLUSTER_CA_DIR = "/etc/parley/kafka-ca"


def _acl(kind: str, name: str, *operations: str) -> dict[str, Any]:
    return {"resource": {"type": kind, "name": name, "patternType": "literal"}, "operations": list(operations)}


def kafka_user(svc: Service) -> dict[str, Any]:
    """Read implies Describe (the lag scaler and the consumers' offset fetches need no more; Describe alone on a
    former group lets the service read its committed offsets); Write on a topic
    is all an idempotent producer needs since Kafka 3.0 (KIP-679)."""
    acls = [_acl("topic", topic.base_name, "Read", "Describe") for topic in svc.reads]
    acls += [_acl("group", group, "Read") for group in dict.fromkeys(c.group for c in svc.consumes)]
    # the groups it read with before issue 17: their committed offsets are adopted once (parley_common.group_offsets)
    acls += [_acl("group", group, "Describe") for group in dict.fromkeys(g for c in svc.consumes for g in c.formerly)]
    acls += [_acl("topic", topic.base_name, "Write", "Describe") for topic in svc.produces]
    return {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaUser",
        "metadata": {"name": svc.app, "labels": {"strimzi.io/cluster": KAFKA_CLUSTER}},
        "spec": {
            "authentication": {"type": "scram-sha-512"},
            "authorization": {"type": "simple", "acls": acls},
        },
    }


def kafka_env(svc: Service) -> list[dict[str, Any]]:
    """Set on the Kafka clients' Deployments only: the console reads the same ConfigMap and would refuse to start
    with a CA file it has not mounted."""
    return [
        {"name": "PARLEY_KAFKA_SECURITY_PROTOCOL", "value": "SASL_SSL"},
        {"name": "PARLEY_KAFKA_SASL_MECHANISM", "value": "SCRAM-SHA-512"},
        {"name": "PARLEY_KAFKA_SSL_CA_FILE", "value": f"{CLUSTER_CA_DIR}/ca.crt"},
        {"name": "PARLEY_KAFKA_SASL_USERNAME", "value": svc.app},
        {"name": "PARLEY_KAFKA_SASL_PASSWORD", "valueFrom": {"secretKeyRef": {"name": svc.app, "key": "password"}}},
    ]


def kafka_ca_volume() -> tuple[dict[str, Any], dict[str, Any]]:
    """(volume, mount) of the cluster CA certificate."""
    volume = {"name": "kafka-ca", "secret": {"secretName": CLUSTER_CA_SECRET, "defaultMode": 0o444,
                                             "items": [{"key": "ca.crt", "path": "ca.crt"}]}}
    return volume, {"name": "kafka-ca", "mountPath": CLUSTER_CA_DIR, "readOnly": True}


def trigger_authentication(svc: Service) -> dict[str, Any]:
    """KEDA's lag scaler as the service's own user: the name from the Deployment's environment, the password and
    the CA from the Secrets."""
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": {"name": f"{svc.app}-kafka"},
        "spec": {
            "env": [{"parameter": "username", "name": "PARLEY_KAFKA_SASL_USERNAME", "containerName": svc.name}],
            "secretTargetRef": [
                {"parameter": "password", "name": svc.app, "key": "password"},
                {"parameter": "ca", "name": CLUSTER_CA_SECRET, "key": "ca.crt"},
            ],
        },
    }


# The lag triggers' own settings for the same listener (KEDA's kafka scaler: `sasl` and `tls` may be metadata).
TRIGGER_SECURITY = {"sasl": "scram_sha512", "tls": "enable"}
