"""Inbox tab counts kept per event: every conversation is counted in one bucket (the fields that decide which
tabs show it and who may see it); a stored transition moves it from its old bucket to its new one. A scope's tabs
are sums over the few buckets of a tenant (teams, agents, statuses and flags), so a count costs one small read
instead of fetching every match (the local database counts that way). Pure: the store keeps the sums."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from parley_router.domain.conversation import Conversation, Status

MINE = (Status.ASSIGNED.value, Status.SNOOZED.value)


@dataclass(frozen=True, order=True)
class Bucket:
    tenant_id: str
    team_id: str | None
    agent: str | None
    status: str
    archived: bool
    blocked: bool
    unanswered: bool  # only while open: a closed conversation is in no unanswered tab

    @property
    def key(self) -> str:
        """The counter's id: stable and unique per bucket (the fields joined; logins and ids hold no NUL)."""
        return "\0".join((self.tenant_id, self.team_id or "", self.agent or "", self.status,
                          *("1" if flag else "0" for flag in (self.archived, self.blocked, self.unanswered))))


def bucket_of(conv: Conversation) -> Bucket:
    return Bucket(conv.tenant_id, conv.team_id, conv.agent, conv.status.value, conv.archived, conv.blocked,
                  conv.unanswered and conv.is_open)


def moves(transitions: Iterable[tuple[Conversation | None, Conversation]]) -> dict[Bucket, int]:
    """The net change per bucket of stored transitions (before → after; None before: a new conversation);
    buckets that end unchanged are left out."""
    delta: Counter[Bucket] = Counter()
    for before, after in transitions:
        if before is not None:
            delta[bucket_of(before)] -= 1
        delta[bucket_of(after)] += 1
    return {bucket: change for bucket, change in delta.items() if change}


def arrivals(transitions: Iterable[tuple[Conversation | None, Conversation]]) -> dict[Bucket, datetime]:
    """Per bucket, the latest activity of the conversations that came into it: where an inbox page of that
    bucket starts looking (a conversation active since then without changing bucket is found all the same)."""
    latest: dict[Bucket, datetime] = {}
    for before, after in transitions:
        bucket = bucket_of(after)
        if before is None or bucket_of(before) != bucket:
            latest[bucket] = max(latest.get(bucket, after.last_activity_at), after.last_activity_at)
    return latest


def visible(bucket: Bucket, login: str, teams: frozenset[str], whole_tenant: bool) -> bool:
    """The visibility rule (parley_common.visibility, inbox.scope) on a bucket: it holds one team and agent."""
    return whole_tenant or bucket.team_id in teams or bucket.agent == login


def tabs(counted: Iterable[tuple[Bucket, int]], login: str, teams: frozenset[str], whole_tenant: bool,
         ) -> dict[str, int]:
    """The caller's tabs: each status, unanswered (open) and archived apart from the others, and mine (assigned
    or snoozed to them, archived too); a blocked customer's conversations are in none (they have their own
    filter)."""
    result = {status.value: 0 for status in Status} | {"unanswered": 0, "archived": 0, "mine": 0}
    for bucket, count in counted:
        if bucket.blocked or not visible(bucket, login, teams, whole_tenant):
            continue
        result["mine"] += count if bucket.agent == login and bucket.status in MINE else 0
        if bucket.archived:
            result["archived"] += count
            continue
        result[bucket.status] += count
        result["unanswered"] += count if bucket.unanswered else 0
    return result


@dataclass(frozen=True)
class Counted:
    """A bucket's counter as stored: its count and how many changes it took."""
    n: int
    seq: int


@dataclass(frozen=True)
class Suspect:
    """A counter that disagreed with a recount while no change came into its bucket."""
    seq: int | None  # None: there was no counter
    truth: int


def suspects(before: Mapping[Bucket, Counted], truth: Mapping[Bucket, int], after: Mapping[Bucket, Counted],
             ) -> dict[Bucket, Suspect]:
    """Counters read `before` and `after` a recount (`truth`) that disagree with it, of buckets that took no
    change meanwhile (the same `seq`): a change stored during the recount but not yet added may explain it."""
    found: dict[Bucket, Suspect] = {}
    for bucket in set(truth) | set(after):
        first, last = before.get(bucket), after.get(bucket)
        seq = last.seq if last else None
        if (first.seq if first else None) == seq and (last.n if last else 0) != truth.get(bucket, 0):
            found[bucket] = Suspect(seq, truth.get(bucket, 0))
    return found


def confirmed(previous: Mapping[Bucket, Suspect], current: Mapping[Bucket, Suspect]) -> dict[Bucket, Suspect]:
    """Suspects found alike by two repairs in a row: their buckets took no change in between, so no change in
    flight explains the difference — a counter missed a change (its process died between the save and the
    add): the recount is the truth."""
    return {bucket: suspect for bucket, suspect in current.items() if previous.get(bucket) == suspect}
