"""A consumer-group member in its own process, for tests that kill it: joins `rejoin` on the inbound topics of a
namespace (one group over two topics, as services have) as replica `<instance>` as a service does (its dead
predecessor's members leave first; it renews its lease in the database and evicts dead peers' members), prints
`joining` when it starts to join (its imports done: they take seconds on a loaded machine), `started` once it
has its partitions, and `got <provider message id>` per record.

    python group_member.py <bootstrap> <namespace> <instance> <mongo uri>"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[2]))  # tests/: known_channels

from known_channels import TEST_CHANNELS

from parley_common.consumer_groups import ConsumerGroup, Reads, consume_group
from parley_common.dead_peers import ReplicaLeases, evicting_dead_peers
from parley_common.kafka import EventPublisher, make_broker
from parley_common.mongo import mongo_client
from parley_common.rejoin import leave_for_dead_predecessor, replica_client_id
from parley_common.topics import INBOUND_MESSAGES, INBOUND_PREFERENCES


async def main(bootstrap: str, namespace: str, instance: str, mongo_uri: str) -> None:
    client_id = replica_client_id("group-member", instance)
    leases = ReplicaLeases(mongo_client(mongo_uri, client_id)[f"parley_group_member_{namespace}"], client_id)
    broker = make_broker(bootstrap, client_id)

    async def handle(event: Any) -> None:
        print(f"got {event.provider_message_id}", flush=True)

    group = ConsumerGroup("rejoin", (Reads(INBOUND_MESSAGES, handle), Reads(INBOUND_PREFERENCES, handle)))
    consume_group(broker, group, namespace=namespace, publisher=EventPublisher(broker, namespace),
                  service="group-member", channels=TEST_CHANNELS)
    print("joining", flush=True)
    async with evicting_dead_peers(broker, bootstrap, leases, {}):
        await leave_for_dead_predecessor(broker, bootstrap, client_id)
        await broker.start()  # returns once the consumer has its partitions
        print("started", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
