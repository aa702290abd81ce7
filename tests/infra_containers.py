"""The suite's servers from containers (PARLEY_TEST_INFRA=containers, tests/infra_choice.py): Apache Kafka in KRaft
mode, MongoDB as a one-member replica set and Redis, from the official images deploy/compose/compose.yaml uses,
started through testcontainers' modules and stopped when the session ends.

Never run on the machine this was written on (it has no Docker engine): the configuration below is pure and
unit-tested (tests/common/unit/test_test_infra.py); the path through a real engine was not exercised."""

from __future__ import annotations

import re
import time
from contextlib import ExitStack
from typing import Any

KAFKA_IMAGE = "apache/kafka:4.1.1"
MONGO_IMAGE = "mongo:8.0.12"
REDIS_IMAGE = "redis:7.4.5"
KAFKA_PORT = 9093  # the listener advertised to the host, at the port Docker maps it to
MONGO_REPLICA_SET = "rs0"
STARTUP_SECONDS = 120
# The attachments topic takes 36 MiB records (parley_common.topics); the broker's own limit must allow them.
KAFKA_MAX_MESSAGE_BYTES = 37 * 1024 * 1024


def kafka_environment() -> dict[str, str]:
    """One combined broker and controller, as deploy/compose/compose.yaml runs it."""
    return {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": f"HOST://0.0.0.0:{KAFKA_PORT},BROKER://0.0.0.0:9092,CONTROLLER://0.0.0.0:9094",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "HOST:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "BROKER",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9094",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",  # topics come from the registry (the fixtures create them)
        "KAFKA_MESSAGE_MAX_BYTES": str(KAFKA_MAX_MESSAGE_BYTES),
        "KAFKA_REPLICA_FETCH_MAX_BYTES": str(KAFKA_MAX_MESSAGE_BYTES),
    }


def kafka_start_script(host: str, mapped_port: int) -> str:
    """Written into the container once Docker has mapped the port: the broker advertises the address the host
    reaches it at, then the image's own launcher starts it."""
    return (f"#!/bin/sh\nexport KAFKA_ADVERTISED_LISTENERS=HOST://{host}:{mapped_port},BROKER://$(hostname -i):9092\n"
            "exec /etc/kafka/docker/run\n")


def mongo_command() -> str:
    return f"--replSet {MONGO_REPLICA_SET} --bind_ip_all"


def mongo_initiate_script() -> str:
    """Run by mongosh inside the container: initiate the one-member set unless it already is one."""
    member = "{_id: 0, host: 'localhost:27017'}"
    return (f"try {{ rs.status().ok }} catch (notYet) {{ rs.initiate({{_id: '{MONGO_REPLICA_SET}', "
            f"members: [{member}]}}).ok }}")


def endpoints(kafka_bootstrap: str, mongo_host: str, mongo_port: int, redis_host: str,
              redis_port: int) -> dict[str, str]:
    """The three variables the fixtures and the services read. directConnection: the member calls itself
    localhost:27017, which the host cannot reach; the suite talks to it directly (it is the primary)."""
    return {
        "PARLEY_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "PARLEY_MONGO_URI": f"mongodb://{mongo_host}:{mongo_port}/?directConnection=true",
        "PARLEY_REDIS_URL": f"redis://{redis_host}:{redis_port}/0",
    }


def start(stack: ExitStack) -> dict[str, str]:  # pragma: no cover - needs a Docker engine
    """Start the three containers (stopped by `stack`) and return their endpoints once each answers."""
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.community.mongodb import MongoDbContainer
    from testcontainers.community.redis import RedisContainer

    class ApacheKafka(KafkaContainer):  # type: ignore[misc]
        """testcontainers' Kafka module drives Confluent's image; the official apache/kafka image is started by
        its own launcher with the same wait-for-the-script trick."""

        def configure(self) -> None:
            self.wait_for = re.compile(r".*Kafka Server started.*")
            for name, value in kafka_environment().items():
                self.with_env(name, value)

        def tc_start(self) -> None:
            script = kafka_start_script(self.get_container_host_ip(), int(self.get_exposed_port(KAFKA_PORT)))
            self.create_file(script.encode(), KafkaContainer.TC_START_SCRIPT)

    class ReplicaSetMongo(MongoDbContainer):  # type: ignore[misc]
        """No root user (a replica set with users needs a key file); the member initiated after start."""

        def _configure(self) -> None:
            self.with_command(mongo_command())

    kafka = ApacheKafka(KAFKA_IMAGE, port=KAFKA_PORT)
    stack.callback(kafka.stop)
    kafka.start(timeout=STARTUP_SECONDS)  # not through `with`: entering a container starts it (again)
    mongo = stack.enter_context(ReplicaSetMongo(MONGO_IMAGE))
    redis = stack.enter_context(RedisContainer(REDIS_IMAGE))
    mongo_port = int(mongo.get_exposed_port(27017))
    _initiate_replica_set(mongo)
    found = endpoints(kafka.get_bootstrap_server(), mongo.get_container_host_ip(), mongo_port,
                      redis.get_container_host_ip(), int(redis.get_exposed_port(6379)))
    _wait_for_primary(found["PARLEY_MONGO_URI"])
    return found


def _initiate_replica_set(mongo: Any) -> None:  # pragma: no cover - needs a Docker engine
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        code, output = mongo.exec(["mongosh", "--quiet", "--eval", mongo_initiate_script()])
        if code == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"MongoDB's replica set did not initiate: {output!r}")
        time.sleep(1)


def _wait_for_primary(uri: str) -> None:  # pragma: no cover - needs a Docker engine
    from pymongo import MongoClient

    deadline = time.monotonic() + STARTUP_SECONDS
    with MongoClient(uri, serverSelectionTimeoutMS=2000) as client:
        while not client.admin.command("hello").get("isWritablePrimary"):
            if time.monotonic() > deadline:
                raise RuntimeError("MongoDB's one member did not become primary")
            time.sleep(0.5)
