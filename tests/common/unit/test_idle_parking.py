"""When a consumer leaves its idle fetches to the process's watcher (parley_common.kafka_seams.parks)."""

import asyncio
import contextlib
from typing import Any

from parley_common.kafka_seams import IdleWatch, parks


def test_a_consumer_parks_once_its_pauses_reached_the_bound_and_only_where_the_broker_answered_at_once() -> None:
    assert not parks(0.005, 0.040, 0.001)  # just emptied its partitions: it looks again soon itself
    assert not parks(0.020, 0.040, 0.001)
    assert parks(0.040, 0.040, 0.001)  # idle a while, the broker answers at once: watched with the others
    assert not parks(0.040, 0.040, 0.500)  # the broker held the fetch (a long poll): watching saves nothing
    assert parks(0.250, 0.250, 0.100)  # a lane with its own bound


class _Fetcher:
    """What `IdleWatch.park` reads of aiokafka's fetcher: the fetch loop's consume future, and what the seams keep."""

    def __init__(self, **attributes: Any) -> None:
        self.__dict__.update(attributes)


class _Assignment:
    """What `IdleWatch.park` reads of aiokafka's assignment: its partitions' states and the future of its end."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.tps: list[object] = []
        self.unassign_future = loop.create_future()

    def state_value(self, tp: object) -> object:
        raise AssertionError("no partition here")


async def test_a_request_built_before_the_fetch_loop_went_round_is_not_parked() -> None:
    """A partition given back while the fetch was out notifies the loop, which goes round and replaces its future:
    the request the fetch carried may lack that partition, so it is not the one watched (`_parley_built_with`)."""
    loop = asyncio.get_running_loop()
    watch = IdleWatch()
    built_with, since = loop.create_future(), loop.create_future()
    stale = _Fetcher(_wait_consume_future=since, _parley_built_with={1: built_with})
    await asyncio.wait_for(watch.park(stale, _Assignment(loop), 1, object(), 0.04), 1)
    assert not watch._parked

    current = _Fetcher(_wait_consume_future=since, _parley_built_with={1: since})
    parking = asyncio.create_task(watch.park(current, _Assignment(loop), 1, object(), 60))
    await asyncio.sleep(0.01)
    assert list(watch._parked) == [(current, 1)]
    parking.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await parking
    assert not watch._parked and not current.__dict__["_parley_parked"]
