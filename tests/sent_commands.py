"""The database commands a test's client sent, in order, for the tests that hold code to the commands it sends (a
bulk write instead of several, an insert instead of an upsert, a query the index answers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from pymongo import monitoring

Noted = TypeVar("Noted")


class SentCommands(monitoring.CommandListener, Generic[Noted]):
    """What `note` makes of each command sent (None: not noted), in the order sent."""

    def __init__(self, note: Callable[[monitoring.CommandStartedEvent], Noted | None]) -> None:
        self.sent: list[Noted] = []
        self._note = note

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        noted = self._note(event)
        if noted is not None:
            self.sent.append(noted)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def names_on(collection: str) -> SentCommands[str]:
    """The names of the commands sent on `collection` (`find`, `insert`, …)."""
    return SentCommands(lambda event: event.command_name if event.command.get(event.command_name) == collection
                        else None)


def writes() -> SentCommands[str]:
    """The names of the inserts and updates sent, on any collection."""
    return SentCommands(lambda event: event.command_name if event.command_name in ("insert", "update") else None)
