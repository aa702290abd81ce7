"""Every rendered object is valid against its schema, and the workloads follow the platform rules of issue 8."""

from __future__ import annotations

import copy
import os
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

Objects = list[dict[str, Any]]
OVERLAYS = ["dev", "production"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_valid(validate: ModuleType, rendered: dict[str, Objects], overlay: str) -> None:
    problems = {validate.name(obj): validate.problems(obj) for obj in rendered[overlay]}
    assert {name: found for name, found in problems.items() if found} == {}


def test_the_validator_rejects_an_unknown_field_and_a_wrong_type(validate: ModuleType, dev: Objects) -> None:
    deployment = copy.deepcopy(validate.by_kind(dev, "Deployment")["parley-ingest"])
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    assert validate.problems(deployment)
    topic = copy.deepcopy(next(iter(validate.by_kind(dev, "KafkaTopic").values())))
    topic["spec"]["partitions"] = "12"
    assert validate.problems(topic)
    scaled = copy.deepcopy(next(iter(validate.by_kind(dev, "ScaledObject").values())))
    scaled["spec"]["maxReplicas"] = 3  # the HPA's spelling, not KEDA's
    assert validate.problems(scaled)


def test_an_object_without_a_schema_fails_instead_of_being_skipped(validate: ModuleType) -> None:
    unknown = {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "x"}, "spec": {}}
    assert validate.problems(unknown)


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployments_have_probes_resources_and_a_hardened_pod(
    validate: ModuleType, rendered: dict[str, Objects], overlay: str
) -> None:
    deployments = validate.by_kind(rendered[overlay], "Deployment")
    assert len(deployments) == 7  # five services, hooks and the console
    for deployment in deployments.values():
        pod = deployment["spec"]["template"]["spec"]
        container = _container(deployment)
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert "memory" in container["resources"]["limits"]
        # preStop pause + uvicorn's 30 s for requests + the broker's 30 s for handlers and commits, before SIGKILL
        assert pod["terminationGracePeriodSeconds"] >= 70
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        keys = {spread["topologyKey"] for spread in pod["topologySpreadConstraints"]}
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
        assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_come_from_the_configmap_and_channels_from_a_secret(
    validate: ModuleType, rendered: dict[str, Objects], overlay: str
) -> None:
    config_maps = validate.by_kind(rendered[overlay], "ConfigMap")
    for deployment in validate.by_kind(rendered[overlay], "Deployment").values():
        container = _container(deployment)
        sources = [source.get("configMapRef", {}).get("name") for source in container["envFrom"]]
        assert any(name in config_maps for name in sources)
        volumes = {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]}
        assert volumes["channels"]["secret"]["secretName"].startswith("parley-channels")
        env = {item["name"]: item.get("value") or item["valueFrom"] for item in container["env"]}
        mount = next(m for m in container["volumeMounts"] if m["name"] == "channels")
        assert env["PARLEY_CHANNELS_FILE"].startswith(mount["mountPath"] + "/")
        # a container restarted after a crash keeps its pod's name: it takes its consumer groups back at once
        assert env["PARLEY_INSTANCE_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_kafka_client_authenticates_as_its_own_user_over_tls(
    validate: ModuleType, services: ModuleType, rendered: dict[str, Objects], overlay: str
) -> None:
    """Each Kafka client's Deployment names its own KafkaUser and that user's Secret; every CA file a service is
    told to trust is mounted from a Secret; KEDA's lag triggers log in as the same user."""
    objects = rendered[overlay]
    users = validate.by_kind(objects, "KafkaUser")
    authentications = validate.by_kind(objects, "TriggerAuthentication")
    for svc in services.SERVICES:
        deployment = validate.by_kind(objects, "Deployment")[svc.app]
        container = _container(deployment)
        env = {item["name"]: item for item in container["env"]}
        if services.KAFKA not in svc.talks_to:
            assert svc.app not in users and not any(name.startswith("PARLEY_KAFKA_") for name in env)
            continue
        assert env["PARLEY_KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
        assert env["PARLEY_KAFKA_SASL_USERNAME"]["value"] == svc.app
        assert env["PARLEY_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": svc.app, "key": "password"}
        assert users[svc.app]["spec"]["authentication"]["type"] == "scram-sha-512"
        volumes = {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]}
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        for name in (name for name in env if name.endswith("_CA_FILE")):
            folder, _, file = env[name]["value"].rpartition("/")
            secret = volumes[mounts[folder]]["secret"]
            assert [item["path"] for item in secret["items"]] == [file], name
        for trigger in validate.by_kind(objects, "ScaledObject").get(svc.app, {"spec": {"triggers": []}})[
                "spec"]["triggers"]:
            if trigger["type"] == "kafka":
                assert trigger["metadata"]["sasl"] == "scram_sha512" and trigger["metadata"]["tls"] == "enable"
                auth = authentications[trigger["authenticationRef"]["name"]]["spec"]
                assert auth["env"] == [{"parameter": "username", "name": "PARLEY_KAFKA_SASL_USERNAME",
                                        "containerName": container["name"]}]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_users_may_do_only_what_their_service_does(
    validate: ModuleType, services: ModuleType, rendered: dict[str, Objects], overlay: str
) -> None:
    users = validate.by_kind(rendered[overlay], "KafkaUser")
    for svc in (svc for svc in services.SERVICES if services.KAFKA in svc.talks_to):
        granted = {(acl["resource"]["type"], acl["resource"]["name"], operation)
                   for acl in users[svc.app]["spec"]["authorization"]["acls"] for operation in acl["operations"]}
        expected = {("topic", topic.base_name, operation) for topic in svc.reads for operation in ("Read", "Describe")}
        expected |= {("group", consumer.group, "Read") for consumer in svc.consumes}
        expected |= {("group", former, "Describe") for consumer in svc.consumes for former in consumer.formerly}
        expected |= {("topic", topic.base_name, op) for topic in svc.produces for op in ("Write", "Describe")}
        assert granted == expected, svc.name
        assert all(acl["resource"]["patternType"] == "literal"
                   for acl in users[svc.app]["spec"]["authorization"]["acls"]), "no wildcard grants"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_has_its_service_pdb_policy_and_exactly_one_autoscaler(
    validate: ModuleType, services: ModuleType, rendered: dict[str, Objects], overlay: str
) -> None:
    objects = rendered[overlay]
    hpas, scaled = validate.by_kind(objects, "HorizontalPodAutoscaler"), validate.by_kind(objects, "ScaledObject")
    for svc in services.SERVICES:
        for kind in ("Service", "PodDisruptionBudget", "NetworkPolicy", "ServiceAccount"):
            assert svc.app in validate.by_kind(objects, kind), f"{kind} {svc.app}"
        assert (svc.app in hpas) != (svc.app in scaled), f"{svc.app}: one autoscaler, not two"
        assert (svc.app in scaled) == bool(svc.consumes), "consumers scale on lag, HTTP-only services on CPU"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_consumers_never_scale_above_their_topics_partitions(
    validate: ModuleType, services: ModuleType, rendered: dict[str, Objects], overlay: str
) -> None:
    topics = {t["spec"]["topicName"]: t for t in validate.by_kind(rendered[overlay], "KafkaTopic").values()}
    for svc in services.SERVICES:
        scaled = validate.by_kind(rendered[overlay], "ScaledObject").get(svc.app)
        if scaled is None:
            continue
        lag = [trigger for trigger in scaled["spec"]["triggers"] if trigger["type"] == "kafka"]
        pairs = {(trigger["metadata"]["topic"], trigger["metadata"]["consumerGroup"]) for trigger in lag}
        assert pairs == {(consumer.topic.base_name, consumer.group) for consumer in svc.consumes}
        for trigger in lag:
            partitions = topics[trigger["metadata"]["topic"]]["spec"]["partitions"]
            assert scaled["spec"]["maxReplicaCount"] <= partitions


def test_max_replicas_are_partitions_divided_by_the_consumers_per_pod(
    validate: ModuleType, services: ModuleType, production: Objects
) -> None:
    """Beyond partitions ÷ consumers per pod, a new pod's consumers of that group would all sit idle."""
    scaled = {name: obj["spec"]["maxReplicaCount"]
              for name, obj in validate.by_kind(production, "ScaledObject").items()}
    for svc in services.SERVICES:
        if svc.consumes:
            assert scaled[svc.app] == min(c.topic.partitions // c.per_pod for c in svc.consumes)
    # outbound's one sender per pod on 12 partitions (4 before issue 17: 3 pods at most); media's 6-partition
    # topics; router and contacts one consumer per group on 12.
    assert (scaled["parley-outbound"], scaled["parley-router"], scaled["parley-media"],
            scaled["parley-contacts"]) == (12, 12, 6, 12)


def _ingress_sources(policy: dict[str, Any]) -> set[str]:
    """Namespaces by name, and pods of this namespace as `pod:<app>`."""
    def source(peer: dict[str, Any]) -> str:
        if "namespaceSelector" in peer:
            return str(peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"])
        [expression] = peer["podSelector"]["matchExpressions"]
        return "pod:" + ",".join(expression["values"])

    return {source(peer) for rule in policy["spec"].get("ingress", []) for peer in rule["from"]}


def test_only_the_ingress_controller_prometheus_and_the_console_reach_the_pods(
    validate: ModuleType, services: ModuleType, production: Objects
) -> None:
    policies = validate.by_kind(production, "NetworkPolicy")
    assert policies["parley-default-deny"]["spec"]["policyTypes"] == ["Ingress", "Egress"]
    for svc in services.SERVICES:
        public = svc.webhook_paths or svc.api_paths or svc.web_paths
        expected = {"monitoring"} | ({"ingress-nginx"} if public else set())
        # the console passes its app's calls on
        expected |= {"pod:parley-console"} if svc.api_paths and svc.in_console else set()
        assert _ingress_sources(policies[svc.app]) == expected


def test_egress_only_to_what_each_service_uses(validate: ModuleType, production: Objects) -> None:
    policies = validate.by_kind(production, "NetworkPolicy")

    def ports(name: str) -> set[int]:
        return {port["port"] for rule in policies[name]["spec"]["egress"] for port in rule["ports"]}

    assert ports("parley-ingest") == {53, 9092, 9093, 27017, 6379, 26379}  # MongoDB: its identities (issue 18)
    assert ports("parley-contacts") == {53, 443, 9092, 9093, 27017}  # the Graph API: Messenger / Instagram profiles
    assert 443 in ports("parley-outbound") and 443 in ports("parley-media")
    assert 443 not in ports("parley-router")
    assert ports("parley-console") == {53, 8002, 8003, 8004, 8005}  # only DNS and the services' APIs
    receivers = [rule for rule in policies["parley-hooks"]["spec"]["egress"] if "ports" not in rule]
    assert receivers == [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]}}]}]  # subscribers' ports, public only


def test_webhooks_reach_only_ingest_and_apis_reach_their_owner(
    validate: ModuleType, services: ModuleType, production: Objects
) -> None:
    ingresses = validate.by_kind(production, "Ingress")

    def routes(name: str) -> dict[str, str]:
        paths = ingresses[name]["spec"]["rules"][0]["http"]["paths"]
        return {path["path"]: path["backend"]["service"]["name"] for path in paths}

    assert set(routes("parley-webhooks").values()) == {"parley-ingest"}
    assert routes("parley-console") == {"/": "parley-console"}
    expected = {path: svc.app for svc in services.SERVICES for path in svc.api_paths}
    assert routes("parley-api") == expected
    for ingress in ingresses.values():
        assert ingress["spec"]["tls"], "production terminates TLS"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_finds_the_monitor_and_the_alerts_by_one_label(
    validate: ModuleType, rendered: dict[str, Objects], overlay: str
) -> None:
    """Prometheus selects ServiceMonitors and PrometheusRules by label (kube-prometheus-stack: `release`): both
    carry the same selector label, which the production overlay sets in one patch."""
    monitor = validate.by_kind(rendered[overlay], "ServiceMonitor")["parley"]
    rule = validate.by_kind(rendered[overlay], "PrometheusRule")["parley"]
    assert monitor["metadata"]["labels"]["release"] == rule["metadata"]["labels"]["release"] != ""
    assert {alert["alert"] for group in rule["spec"]["groups"] for alert in group["rules"]} >= {
        "ParleyConsumerLagGrowing", "ParleyDeadLetters", "ParleyHandlerFailures", "ParleyHttpErrors",
        "ParleyNotReady"}
    dashboard = validate.by_kind(rendered[overlay], "ConfigMap")["parley-grafana-dashboard"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert '"uid": "parley-overview"' in dashboard["data"]["grafana-dashboard.json"]


def test_the_selector_patch_changes_it(tmp_path: Path, validate: ModuleType) -> None:
    """An overlay of the production overlay with another release name relabels both objects."""
    overlay = tmp_path / "mine"
    overlay.mkdir()
    production = Path(validate.HERE) / "overlays" / "production"
    (overlay / "release.yaml").write_text("- {op: replace, path: /metadata/labels/release, value: prom-ops}\n")
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "resources": [os.path.relpath(production, overlay)],
        "patches": [{"path": "release.yaml", "target": {"group": "monitoring.coreos.com", "name": "parley"}}]}))
    out = subprocess.run([validate.kubectl(), "kustomize", "--load-restrictor", "LoadRestrictionsNone",
                          str(overlay)], capture_output=True, text=True, check=True).stdout
    relabelled = [doc for doc in yaml.safe_load_all(out)
                  if doc and doc["kind"] in {"ServiceMonitor", "PrometheusRule"}]
    assert len(relabelled) == 2 and all(doc["metadata"]["labels"]["release"] == "prom-ops" for doc in relabelled)


def test_service_monitor_scrapes_every_service(validate: ModuleType, production: Objects) -> None:
    monitor = validate.by_kind(production, "ServiceMonitor")["parley"]
    wanted = monitor["spec"]["selector"]["matchLabels"]
    assert monitor["spec"]["endpoints"][0] == {**monitor["spec"]["endpoints"][0], "port": "http", "path": "/metrics"}
    for service in validate.by_kind(production, "Service").values():
        assert wanted.items() <= service["metadata"]["labels"].items()
        assert [port["name"] for port in service["spec"]["ports"]] == ["http"]


def test_production_pins_image_tags(validate: ModuleType, production: Objects) -> None:
    for deployment in validate.by_kind(production, "Deployment").values():
        image = _container(deployment)["image"]
        tag = image.rsplit(":", 1)[-1]
        assert ":" in image and tag != "latest" and tag[0].isdigit(), image
