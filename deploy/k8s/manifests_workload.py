"""Per-service workload objects: ServiceAccount, Deployment, Service, PodDisruptionBudget, autoscaler."""

from __future__ import annotations

from typing import Any

from manifests_kafka_access import TRIGGER_SECURITY, kafka_ca_volume, kafka_env

from services import KAFKA, MONGODB, REDIS, SERVICES, Consumer, Service

UID = 10001  # the image's non-root user (deploy/docker/Dockerfile)
CHANNELS_DIR = "/etc/parley/channels"
# On SIGTERM uvicorn waits up to 30 s for in-flight requests, then the lifespan stops the broker, which waits up
# to 30 s more (graceful_timeout in parley_common.kafka) for running handlers and commits their offsets. The
# preStop pause first lets the endpoints controller and the ingress stop sending. 5 + 30 + 30 + slack:
PRESTOP_SECONDS = 5
GRACE_SECONDS = 75
CPU_TARGET = {"type": "Utilization", "averageUtilization": 70}
# The CA of each store's server certificate, from a Secret of that name (key ca.crt): TLS is on in the base.
STORE_CAS = {MONGODB: ("parley-mongodb-ca", "PARLEY_MONGO_TLS_CA_FILE"),
             REDIS: ("parley-redis-ca", "PARLEY_REDIS_TLS_CA_FILE")}


def labels(svc: Service) -> dict[str, str]:
    return {"app.kubernetes.io/name": svc.app, "app.kubernetes.io/component": svc.name}


def selector(svc: Service) -> dict[str, Any]:
    return {"matchLabels": {"app.kubernetes.io/name": svc.app}}


def metadata(svc: Service) -> dict[str, Any]:
    return {"name": svc.app, "labels": labels(svc)}


def scale_target(svc: Service) -> dict[str, str]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": svc.app}


def service_account(svc: Service) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(svc),
        "automountServiceAccountToken": False,  # no service calls the Kubernetes API
    }


def _probe(path: str, period: int, failures: int, timeout: int = 2) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def _env(svc: Service) -> list[dict[str, Any]]:
    env = [
        {"name": f"{svc.env_prefix}HOST", "value": "0.0.0.0"},
        {"name": f"{svc.env_prefix}PORT", "value": str(svc.port)},
        {"name": "PARLEY_CHANNELS_FILE", "value": f"{CHANNELS_DIR}/channels.yaml"},
        # The replica's name, kept when its container restarts after a crash: the restarted process makes the
        # dead one's consumers leave their groups and takes their partitions back at once (parley_common.rejoin).
        {"name": "PARLEY_INSTANCE_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    if KAFKA in svc.talks_to:
        env += kafka_env(svc)
    env += [{"name": variable, "value": f"/etc/parley/{secret}/ca.crt"}
            for store, (secret, variable) in STORE_CAS.items() if store in svc.talks_to]
    if svc.web_paths:  # the console: where each API it passes calls to lives, in the cluster
        env += [{"name": f"{svc.env_prefix}{api.name.upper()}_URL", "value": f"http://{api.app}:{api.port}"}
                for api in SERVICES if api.api_paths and api.in_console]
    return env


def _env_from(svc: Service) -> list[dict[str, Any]]:
    sources: list[dict[str, Any]] = [
        {"configMapRef": {"name": "parley-settings"}},
        {"secretRef": {"name": "parley-secrets"}},  # PARLEY_JWT_SECRET, PARLEY_MONGO_URI, PARLEY_REDIS_URL
    ]
    if svc.name == "media":
        sources.append({"secretRef": {"name": "parley-media"}})  # object storage keys, link signing and media id keys
    return sources


def _container(svc: Service) -> dict[str, Any]:
    res = svc.resources
    return {
        "name": svc.name,
        "image": f"parley/{svc.name}",
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": svc.port, "protocol": "TCP"}],
        "env": _env(svc),
        "envFrom": _env_from(svc),
        "resources": {
            "requests": {"cpu": res.cpu_request, "memory": res.memory_request},
            "limits": {"cpu": res.cpu_limit, "memory": res.memory_limit},
        },
        "startupProbe": _probe("/healthz", period=2, failures=30),
        "livenessProbe": _probe("/healthz", period=10, failures=3),
        "readinessProbe": _probe("/readyz", period=5, failures=3, timeout=3),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRESTOP_SECONDS)]}}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "channels", "mountPath": CHANNELS_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
            *(mount for _, mount in _certificate_volumes(svc)),
        ],
    }


def _certificate_volumes(svc: Service) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(volume, mount) of every CA certificate the service's clients verify their servers with."""
    pairs = [kafka_ca_volume()] if KAFKA in svc.talks_to else []
    for store, (secret, _) in STORE_CAS.items():
        if store in svc.talks_to:
            pairs.append(({"name": secret, "secret": {"secretName": secret, "defaultMode": 0o444,
                                                       "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                          {"name": secret, "mountPath": f"/etc/parley/{secret}", "readOnly": True}))
    return pairs


def _spread(svc: Service) -> list[dict[str, Any]]:
    return [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": selector(svc),
        }
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    ]


def deployment(svc: Service) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(svc),
        "spec": {
            # No `replicas`: the HPA or KEDA owns the count; a value here would reset it on every apply.
            "revisionHistoryLimit": 5,
            "selector": selector(svc),
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels(svc)},
                "spec": {
                    "serviceAccountName": svc.app,
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": GRACE_SECONDS,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": UID,
                        "runAsGroup": UID,
                        "fsGroup": UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "topologySpreadConstraints": _spread(svc),
                    "containers": [_container(svc)],
                    "volumes": [
                        {"name": "channels", "secret": {"secretName": "parley-channels", "defaultMode": 0o440}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": svc.resources.tmp_size}},
                        *(volume for volume, _ in _certificate_volumes(svc)),
                    ],
                },
            },
        },
    }


def service(svc: Service) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(svc),
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/name": svc.app},
            "ports": [{"name": "http", "port": svc.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def pdb(svc: Service) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(svc),
        "spec": {"maxUnavailable": 1, "selector": selector(svc)},
    }


def autoscaler(svc: Service) -> dict[str, Any]:
    return scaled_object(svc) if svc.consumes else hpa(svc)


def hpa(svc: Service) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(svc),
        "spec": {
            "scaleTargetRef": scale_target(svc),
            "minReplicas": 2,
            "maxReplicas": 10,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": CPU_TARGET}}],
            # Meta disables a webhook subscription after about an hour of failures: scale up fast, down slowly.
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
        },
    }


def scaled_object(svc: Service) -> dict[str, Any]:
    """KEDA creates and owns the HPA of a consumer; a second HPA on the same Deployment would fight it, so its
    HTTP API is covered by the CPU trigger here. A trigger is named by its topic, and by its group too when the
    service reads that topic with more than one (trigger names are unique)."""
    topics = [consumer.topic.base_name for consumer in svc.consumes]

    def trigger_name(consumer: Consumer) -> str:
        name = f"lag-{consumer.topic.base_name.replace('.', '-')}"
        return name if topics.count(consumer.topic.base_name) == 1 else f"{name}-{consumer.group}"

    lag_triggers = [
        {
            "type": "kafka",
            "name": trigger_name(consumer),
            "metadata": {
                "bootstrapServersFromEnv": "PARLEY_KAFKA_BOOTSTRAP",
                "consumerGroup": consumer.group,
                "topic": consumer.topic.base_name,
                "lagThreshold": "500",
                "activationLagThreshold": "0",
                "offsetResetPolicy": "earliest",
                "allowIdleConsumers": "false",
                **TRIGGER_SECURITY,
            },
            "authenticationRef": {"name": f"{svc.app}-kafka"},
        }
        for consumer in svc.consumes
    ]
    cpu = {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "70"}}
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": metadata(svc),
        "spec": {
            "scaleTargetRef": scale_target(svc),
            "minReplicaCount": 2,
            "maxReplicaCount": svc.max_replicas,
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "triggers": [*lag_triggers, cpu],
        },
    }
