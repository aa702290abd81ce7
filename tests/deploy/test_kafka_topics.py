"""The Strimzi KafkaTopics are generated from the topic registry and the committed base matches it."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from parley_common.topics import ALL_TOPICS


def test_committed_base_is_what_generate_writes(generate: ModuleType) -> None:
    stale = [path for path, text in generate.render().items() if (generate.BASE / path).read_text() != text]
    assert stale == [], f"run python deploy/k8s/generate.py: {stale} differ"


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_every_registry_topic_has_a_kafka_topic(
    validate: ModuleType, rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    topics = {obj["spec"]["topicName"]: obj for obj in validate.by_kind(rendered[overlay], "KafkaTopic").values()}
    assert set(topics) == {topic.base_name for topic in ALL_TOPICS}
    for topic in ALL_TOPICS:
        spec = topics[topic.base_name]["spec"]
        assert spec["partitions"] == topic.partitions
        assert spec["config"]["retention.ms"] == topic.retention_ms
        assert spec["config"]["max.message.bytes"] == topic.max_message_bytes
        assert spec["config"]["cleanup.policy"] == ("compact" if topic.compacted else "delete")


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_strimzi_resources_use_the_api_current_operators_serve(
    validate: ModuleType, rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    """Strimzi 0.49 added kafka.strimzi.io/v1 and 1.0 serves nothing else: a v1beta2 object would not apply."""
    strimzi = [obj for obj in rendered[overlay] if obj["apiVersion"].startswith("kafka.strimzi.io/")]
    assert strimzi and {obj["apiVersion"] for obj in strimzi} == {"kafka.strimzi.io/v1"}
    assert {key for key in validate.CRD_SCHEMAS if key[0].startswith("kafka.strimzi.io/")} == \
        {("kafka.strimzi.io/v1", "KafkaTopic"), ("kafka.strimzi.io/v1", "KafkaUser")}


def test_production_topics_survive_a_broker_loss(validate: ModuleType, production: list[dict[str, Any]]) -> None:
    for topic in validate.by_kind(production, "KafkaTopic").values():
        assert topic["spec"]["replicas"] == 3
        assert topic["spec"]["config"]["min.insync.replicas"] == 2
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "parley-kafka"


def test_dev_topics_fit_one_broker(validate: ModuleType, dev: list[dict[str, Any]]) -> None:
    for topic in validate.by_kind(dev, "KafkaTopic").values():
        assert topic["spec"]["replicas"] == 1
        assert topic["spec"]["config"]["min.insync.replicas"] == 1


def test_compaction_follows_the_registry_flag(generate: ModuleType) -> None:
    deleted = next(topic for topic in ALL_TOPICS if not topic.compacted)
    state_topic = type(deleted)(**{**deleted.__dict__, "compacted": True})
    assert generate.kafka_topic(deleted)["spec"]["config"]["cleanup.policy"] == "delete"
    assert generate.kafka_topic(state_topic)["spec"]["config"]["cleanup.policy"] == "compact"
