"""`rejoin_on_empty_protocol`: a JoinGroup answer electing this member leader without naming the group's assignment
protocol makes it join again, instead of failing the consumer's start; any other answer is handled by aiokafka."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiokafka.consumer.group_coordinator import CoordinatorGroupRebalance
from aiokafka.errors import KafkaError

from parley_common.rejoin import rejoin_on_empty_protocol


class AssignmentAsked(Exception):
    """What the coordinator below raises when aiokafka's own leader path asks it to assign the partitions."""


class Coordinator:
    async def _perform_assignment(self, response: object) -> dict[str, bytes]:
        raise AssignmentAsked(response)


def rebalance() -> CoordinatorGroupRebalance:
    rejoin_on_empty_protocol()
    rejoin_on_empty_protocol()  # installed once however often it is called (every broker made calls it)
    joining = object.__new__(CoordinatorGroupRebalance)
    joining.group_id = "parley-router.events"
    joining._coordinator = Coordinator()
    return joining


def answer(protocol: str) -> SimpleNamespace:
    return SimpleNamespace(group_protocol=protocol, leader_id="m-1", member_id="m-1", members=[])


def test_a_leader_told_no_protocol_joins_again() -> None:
    assert asyncio.run(rebalance()._on_join_leader(answer(""))) is None


def test_a_leader_told_its_protocol_assigns_as_aiokafka_does() -> None:
    with pytest.raises(KafkaError, match="AssignmentAsked"):
        asyncio.run(rebalance()._on_join_leader(answer("roundrobin")))
