"""JSON schemas for the custom resources Parley ships (Strimzi KafkaTopic and KafkaUser in `kafka.strimzi.io/v1`,
the only version Strimzi 1.0 serves; KEDA ScaledObject and TriggerAuthentication, Prometheus Operator
ServiceMonitor and PrometheusRule), written by hand from the operators' published CRDs: the fields Parley uses or may
reasonably use, with the CRDs' types, minimums, enums and required fields. They are stricter than the CRDs in
one way on purpose: unknown fields are errors here, where the API server would silently prune them.

kubernetes-validate ships no CRD schemas; these subsets keep a typo in a custom resource from passing."""

from __future__ import annotations

from typing import Any

STRING: dict[str, Any] = {"type": "string"}
INT: dict[str, Any] = {"type": "integer"}
STRING_MAP: dict[str, Any] = {"type": "object", "additionalProperties": STRING}
METADATA: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
        "namespace": STRING,
        "labels": STRING_MAP,
        "annotations": STRING_MAP,
    },
}


def _closed(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "properties": properties, "required": list(required)}


def _resource(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return _closed(
        {"apiVersion": {"const": api_version}, "kind": {"const": kind}, "metadata": METADATA, "spec": spec},
        ("apiVersion", "kind", "metadata", "spec"),
    )


KAFKA_TOPIC = _resource(
    "kafka.strimzi.io/v1",
    "KafkaTopic",
    _closed({
        "partitions": {"type": "integer", "minimum": 1},
        "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
        "config": {"type": "object"},
        "topicName": STRING,
    }),
)

_SECRET_KEY = _closed({"name": STRING, "key": STRING}, ("name", "key"))
_ACL = _closed(
    {
        "type": {"enum": ["allow", "deny"]},
        "resource": _closed({"type": {"enum": ["topic", "group", "cluster", "transactionalId"]}, "name": STRING,
                             "patternType": {"enum": ["literal", "prefix"]}}, ("type",)),
        "host": STRING,
        "operations": {"type": "array", "minItems": 1, "items": {"enum": [
            "Read", "Write", "Create", "Delete", "Alter", "Describe", "ClusterAction", "AlterConfigs",
            "DescribeConfigs", "IdempotentWrite", "All"]}},
    },
    ("resource", "operations"),
)
KAFKA_USER = _resource(
    "kafka.strimzi.io/v1",
    "KafkaUser",
    _closed({
        "authentication": _closed({
            "type": {"enum": ["tls", "tls-external", "scram-sha-512"]},
            "password": _closed({"valueFrom": _closed({"secretKeyRef": _SECRET_KEY}, ("secretKeyRef",))},
                                ("valueFrom",)),
        }, ("type",)),
        "authorization": _closed({"type": {"enum": ["simple"]}, "acls": {"type": "array", "items": _ACL}},
                                 ("type", "acls")),
        "quotas": _closed({"producerByteRate": INT, "consumerByteRate": INT, "requestPercentage": INT,
                           "controllerMutationRate": {"type": "number"}}),
        "template": {"type": "object"},
    }),
)

_TRIGGER = _closed(
    {
        "type": STRING,
        "name": STRING,
        "metadata": STRING_MAP,
        "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
        "useCachedMetrics": {"type": "boolean"},
        "authenticationRef": _closed({"name": STRING, "kind": {"enum": ["TriggerAuthentication",
                                                                         "ClusterTriggerAuthentication"]}},
                                     ("name",)),
    },
    ("type", "metadata"),
)

SCALED_OBJECT = _resource(
    "keda.sh/v1alpha1",
    "ScaledObject",
    _closed(
        {
            "scaleTargetRef": _closed(
                {"apiVersion": STRING, "kind": STRING, "name": STRING, "envSourceContainerName": STRING}, ("name",)
            ),
            "pollingInterval": INT,
            "cooldownPeriod": INT,
            "initialCooldownPeriod": INT,
            "idleReplicaCount": INT,
            "minReplicaCount": {"type": "integer", "minimum": 0},
            "maxReplicaCount": {"type": "integer", "minimum": 1},
            "advanced": {"type": "object"},
            "fallback": _closed({"failureThreshold": INT, "replicas": INT}, ("failureThreshold", "replicas")),
            "triggers": {"type": "array", "minItems": 1, "items": _TRIGGER},
        },
        ("scaleTargetRef", "triggers"),
    ),
)

_TARGET = {"type": "array", "items": _closed({"parameter": STRING, "name": STRING, "key": STRING},
                                                ("parameter", "name", "key"))}
TRIGGER_AUTHENTICATION = _resource(
    "keda.sh/v1alpha1",
    "TriggerAuthentication",
    _closed({
        "secretTargetRef": _TARGET,
        "configMapTargetRef": _TARGET,
        "env": {"type": "array", "items": _closed({"parameter": STRING, "name": STRING, "containerName": STRING},
                                                   ("parameter", "name"))},
        "podIdentity": {"type": "object"},
    }),
)

_ENDPOINT = _closed({
    "port": STRING,
    "targetPort": {"type": ["integer", "string"]},
    "path": STRING,
    "scheme": {"enum": ["http", "https"]},
    "interval": {"type": "string", "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?"
                                              r"(([0-9]+)s)?(([0-9]+)ms)?)$"},
    "scrapeTimeout": STRING,
    "honorLabels": {"type": "boolean"},
    "relabelings": {"type": "array"},
    "metricRelabelings": {"type": "array"},
})

SERVICE_MONITOR = _resource(
    "monitoring.coreos.com/v1",
    "ServiceMonitor",
    _closed(
        {
            "selector": {"type": "object"},
            "namespaceSelector": {"type": "object"},
            "jobLabel": STRING,
            "endpoints": {"type": "array", "minItems": 1, "items": _ENDPOINT},
        },
        ("selector",),
    ),
)

_RULE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"alert": STRING, "record": STRING, "expr": {"type": ["string", "integer"]},
                   "for": {"type": "string", "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?"
                                                       r"(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
                   "keep_firing_for": STRING, "labels": STRING_MAP, "annotations": STRING_MAP},
    "required": ["expr"],
    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
}
PROMETHEUS_RULE = _resource(
    "monitoring.coreos.com/v1",
    "PrometheusRule",
    _closed({"groups": {"type": "array", "items": _closed(
        {"name": STRING, "interval": STRING, "limit": INT, "partial_response_strategy": STRING,
         "rules": {"type": "array", "items": _RULE}}, ("name",))}}),
)

CRD_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("kafka.strimzi.io/v1", "KafkaTopic"): KAFKA_TOPIC,
    ("kafka.strimzi.io/v1", "KafkaUser"): KAFKA_USER,
    ("keda.sh/v1alpha1", "TriggerAuthentication"): TRIGGER_AUTHENTICATION,
    ("keda.sh/v1alpha1", "ScaledObject"): SCALED_OBJECT,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PROMETHEUS_RULE,
}
