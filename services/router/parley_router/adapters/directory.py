"""MongoDB repositories of agents, teams, routing rules, and the contacts projection (blocked, labels)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from parley_common.batching import TickBatcher
from parley_common.bounds import Identifier
from parley_common.ids import ConversationKey
from parley_common.mongo import inserted_of, read_stored
from parley_router.adapters.contact_cards import (
    APPLIED,
    CardChange,
    CardWrite,
    blocked_writes,
    card_writes,
    first_creations,
    guarded_update,
    merged_card_ids,
    new_card,
    resumed_after,
)
from parley_router.domain import contact_fields
from parley_router.domain.assignment import DEFAULT_CAPACITY, Agent, Strategy, Team
from parley_router.domain.conversation import Assignee, AssigneeKind, ContactSummary
from parley_router.domain.rules import BusinessHours, Conditions, Rule

Doc = dict[str, Any]
# What an agent or a team may hold, bounded: a capacity over 64 bits could not even be stored.
Capacity = Annotated[int, Field(ge=0, le=1000, strict=True)]
Names = Annotated[list[Identifier], Field(max_length=100)]


def _time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name, e.g. Europe/Berlin)") from None
    return name


TimeZone = Annotated[str, Field(max_length=64), AfterValidator(_time_zone)]
ClockTime = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="HH:MM, 00:00-23:59")]
Weekday = Annotated[int, Field(ge=0, le=6, strict=True, description="0 = Monday")]


class AgentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    teams: Names = Field(default_factory=list)
    skills: Names = Field(default_factory=list)
    capacity: dict[Identifier, Capacity] = Field(default_factory=dict, max_length=50,
                                                 description="channel type -> max active")
    default_capacity: Capacity = DEFAULT_CAPACITY

    def to_agent(self, login: str) -> Agent:
        return Agent(login, frozenset(self.teams), frozenset(self.skills), tuple(sorted(self.capacity.items())),
                     self.default_capacity)


class TeamSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=200)
    strategy: Strategy = Strategy.ROUND_ROBIN
    offer_timeout_seconds: int = Field(default=300, ge=5, le=86_400, strict=True)
    requeue_on_offline: bool = Field(
        default=False, strict=True, description="when an agent goes offline, also return their accepted "
                                                "conversations of this team to its queue (offers always return)")


class RuleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Identifier
    target_kind: AssigneeKind
    target_id: Identifier
    sticky: bool = Field(default=False, strict=True)
    channel_types: Names = Field(default_factory=list)
    channel_ids: Names = Field(default_factory=list)
    labels_any: Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=100)] = Field(
        default_factory=list)
    keywords_any: Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=100)] = Field(
        default_factory=list)
    languages: Names = Field(default_factory=list)
    custom_fields: dict[Identifier, Annotated[str, Field(max_length=500)]] = Field(default_factory=dict,
                                                                                  max_length=50)
    within_business_hours: bool | None = Field(default=None, strict=True)
    bot_timeout_seconds: int | None = Field(default=None, ge=5, le=86_400, strict=True,
                                            description="a bot target: how long it may leave the customer's "
                                                        "message unanswered (default 120)")
    fallback_team: Identifier | None = Field(default=None, description="a bot target: the team that takes over "
                                             "when it does not answer in time (default `default`)")

    @model_validator(mode="after")
    def _bot_fields_for_a_bot(self) -> RuleSpec:
        if self.target_kind is not AssigneeKind.BOT and (self.bot_timeout_seconds or self.fallback_team):
            raise ValueError("bot_timeout_seconds and fallback_team apply to a bot target only")
        return self

    def to_rule(self) -> Rule:
        conditions = Conditions(frozenset(self.channel_types), frozenset(self.channel_ids),
                                frozenset(self.labels_any), tuple(self.keywords_any), frozenset(self.languages),
                                tuple(sorted(self.custom_fields.items())), self.within_business_hours)
        return Rule(self.id, Assignee(self.target_kind, self.target_id), conditions, self.sticky,
                    self.bot_timeout_seconds, self.fallback_team)


class RoutingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: list[RuleSpec] = Field(default_factory=list, max_length=500)
    timezone: TimeZone = "UTC"
    weekdays: Annotated[list[Weekday], Field(max_length=7)] = Field(default_factory=lambda: [0, 1, 2, 3, 4])
    opens: ClockTime = "09:00"
    closes: ClockTime = "18:00"

    def hours(self) -> BusinessHours:
        from datetime import time
        return BusinessHours(self.timezone, frozenset(self.weekdays), time.fromisoformat(self.opens),
                             time.fromisoformat(self.closes))


class Directory:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._agents = db["agents"]
        self._teams = db["teams"]
        self._routing = db["routing"]
        self._versions = db["directory_versions"]  # one counter per tenant, moved by every directory write
        self._blocked = db["blocked_identities"]
        self._contacts = db["contacts"]
        # concurrent handlers of a consumer batch share one query (parley_common.batching)
        self._blocked_lookups: TickBatcher[ConversationKey, bool] = TickBatcher(self._are_blocked)
        self._contact_lookups: TickBatcher[ConversationKey, Doc | None] = TickBatcher(self._contacts_of)

    async def ensure_indexes(self) -> None:
        await self._agents.create_index([("tenant_id", ASCENDING), ("teams", ASCENDING)])
        await self._contacts.create_index([("tenant_id", ASCENDING), ("identities", ASCENDING)])

    async def version(self, tenant_id: str) -> int:
        """How many times the tenant's agents, teams or routing were written: caches compare it instead of
        reloading everything (1,000 agents took 40-60 ms of the event loop every 2 s)."""
        doc = await self._versions.find_one({"_id": tenant_id})
        return int(doc["version"]) if doc else 0

    async def _written(self, tenant_id: str) -> int:
        doc = await self._versions.find_one_and_update({"_id": tenant_id}, {"$inc": {"version": 1}}, upsert=True,
                                                       return_document=ReturnDocument.AFTER)
        if doc is None:  # never, with an upsert returning the document after it; typed as optional
            raise RuntimeError("the directory version upsert returned no document")
        return int(doc["version"])

    async def put_agent(self, tenant_id: str, login: str, spec: AgentSpec) -> int:
        await self._agents.replace_one({"_id": f"{tenant_id}|{login}"},
                                       {**spec.model_dump(), "tenant_id": tenant_id, "login": login}, upsert=True)
        return await self._written(tenant_id)

    async def agent(self, tenant_id: str, login: str) -> Agent | None:
        doc = await self._agents.find_one({"_id": f"{tenant_id}|{login}"})
        return _agent(doc) if doc else None

    async def agents(self, tenant_id: str, team_id: str | None = None) -> list[Agent]:
        query: Doc = {"tenant_id": tenant_id}
        if team_id is not None:
            query["teams"] = team_id
        return [_agent(doc) async for doc in self._agents.find(query)]

    async def put_team(self, tenant_id: str, team_id: str, spec: TeamSpec) -> int:
        await self._teams.replace_one({"_id": f"{tenant_id}|{team_id}"},
                                      {**spec.model_dump(), "tenant_id": tenant_id, "team_id": team_id},
                                      upsert=True)
        return await self._written(tenant_id)

    async def team_specs(self, tenant_id: str) -> dict[str, TeamSpec]:
        cursor = self._teams.find({"tenant_id": tenant_id})
        return {doc["team_id"]: read_stored(TeamSpec, doc) async for doc in cursor}

    async def teams(self, tenant_id: str) -> dict[str, Team]:
        return {team_id: Team(team_id, spec.strategy, spec.offer_timeout_seconds,
                              requeue_on_offline=spec.requeue_on_offline)
                for team_id, spec in (await self.team_specs(tenant_id)).items()}

    async def put_routing(self, tenant_id: str, spec: RoutingSpec) -> int:
        await self._routing.replace_one({"_id": tenant_id}, spec.model_dump(), upsert=True)
        return await self._written(tenant_id)

    async def routing(self, tenant_id: str) -> RoutingSpec:
        doc = await self._routing.find_one({"_id": tenant_id})
        return read_stored(RoutingSpec, doc) if doc else RoutingSpec()

    async def set_blocked(self, blocked: Mapping[ConversationKey, bool]) -> None:
        """Identities blocked (True) or not (False) any more, in one write."""
        if blocked:
            await self._blocked.bulk_write(blocked_writes(blocked), ordered=False)

    async def is_blocked(self, key: ConversationKey) -> bool:
        return await self._blocked_lookups.submit(key)

    async def _are_blocked(self, keys: list[ConversationKey]) -> list[bool]:
        blocked = {doc["_id"] async for doc in self._blocked.find({"_id": {"$in": [str(key) for key in keys]}},
                                                                  projection={"_id": 1})}
        return [str(key) in blocked for key in keys]

    async def change_cards(self, changes: Sequence[CardChange]) -> dict[str, Doc]:
        """A consumer batch's changes of contacts' cards in one ordered bulk write, each applied once
        (contact_cards.card_writes) — the new cards inserted before it (contact_cards.first_creations) — and the
        cards as stored after it in one query, by card id (what the conversations then show). A batch that folds
        cards first reads the folded ones' custom fields."""
        if not changes:
            return {}
        merged_ids = merged_card_ids(changes)
        if len(changes) == 1 and not merged_ids:
            return await self._change_card(changes[0])
        merged = {doc["_id"]: doc.get("custom_fields", {}) async for doc in self._contacts.find(
            {"_id": {"$in": merged_ids}}, projection={"custom_fields": 1})} if merged_ids else {}
        inserted = await inserted_of(self._contacts, first_creations(changes))
        await self._write_cards(card_writes([change for index, change in enumerate(changes) if index not in inserted],
                                            merged))
        cursor = self._contacts.find({"_id": {"$in": list({change.card_id for change in changes})}},
                                     projection=CARD_SHOWN)
        return {doc["_id"]: doc async for doc in cursor}

    async def _write_cards(self, writes: list[CardWrite]) -> None:
        """In order; resumed past a card's creating upsert that met the card already there (a redelivery)."""
        while writes:
            try:
                await self._contacts.bulk_write([write.operation() for write in writes], ordered=True)
                return
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors") or ()
                rest = resumed_after(writes, errors[0]) if errors else None
                if rest is None:
                    raise
                writes = rest

    async def _change_card(self, change: CardChange) -> dict[str, Doc]:
        """A lone change (a quiet moment's batch): a new card inserted (and shown as inserted), any other change
        written and read back in one findAndModify."""
        card = new_card(change)
        if card is not None and await inserted_of(self._contacts, {0: card}):
            return {change.card_id: {name: value for name, value in card.items() if name not in CARD_SHOWN}}
        guard, update = guarded_update(change)
        try:
            card = await self._contacts.find_one_and_update(guard, update, upsert=True, projection=CARD_SHOWN,
                                                            return_document=ReturnDocument.AFTER)
        except DuplicateKeyError:  # the card had this event already (a redelivery): as it is
            card = await self._contacts.find_one({"_id": change.card_id}, projection=CARD_SHOWN)
        return {change.card_id: card} if card else {}

    async def identities_matching(self, tenant_id: str, text: str, limit: int = 200) -> list[str]:
        """Identities of contacts whose name, phone or e-mail contains `text` (the contact summary)."""
        pattern = {"$regex": re.escape(text), "$options": "i"}
        query = {"tenant_id": tenant_id, "$or": [{field: pattern} for field in (
            "name", "display_name", "platform_name", "phone_e164", "phones", "email", "emails")]}
        cursor = self._contacts.find(query, projection={"identities": 1}, limit=limit)
        return [identity async for doc in cursor for identity in doc.get("identities", [])]

    async def contact(self, tenant_id: str, contact_id: str) -> Doc | None:
        """The projected card, or the one it was merged into (followed a few merges deep)."""
        for _ in range(MERGE_HOPS):
            doc = await self._contacts.find_one({"_id": f"{tenant_id}|{contact_id}"}, projection=CARD_SHOWN)
            if doc is None or not doc.get("merged_into"):
                return doc
            contact_id = doc["merged_into"]
        return None

    async def cards(self, tenant_id: str, contact_ids: set[str]) -> dict[str, Doc]:
        """Projected cards by contact id (by `_id` alone: one index lookup per id on either database)."""
        if not contact_ids:
            return {}
        cursor = self._contacts.find({"_id": {"$in": [f"{tenant_id}|{contact_id}" for contact_id in contact_ids]}},
                                     projection=CARD_SHOWN)
        return {doc["_id"].split("|", 1)[1]: doc async for doc in cursor}

    async def contact_of(self, key: ConversationKey) -> Doc | None:
        return await self._contact_lookups.submit(key)

    async def _contacts_of(self, keys: list[ConversationKey]) -> list[Doc | None]:
        by_identity: dict[tuple[str, str], Doc] = {}
        for tenant_id in {key.tenant_id for key in keys}:
            identities = list({_identity(key) for key in keys if key.tenant_id == tenant_id})
            async for doc in self._contacts.find({"tenant_id": tenant_id, "identities": {"$in": identities}},
                                                 projection=CARD_SHOWN):
                by_identity.update({(tenant_id, identity): doc for identity in doc.get("identities", ())})
        return [by_identity.get((key.tenant_id, _identity(key))) for key in keys]


MERGE_HOPS = 5
CARD_SHOWN = {APPLIED: 0}  # a card without the bookkeeping of its events


def contact_summary(doc: Doc) -> ContactSummary:
    """What conversations show of a projected card: the agents' name first, then the channel's."""
    phones = doc.get("phones") or ()
    return ContactSummary(contact_id=doc["_id"].split("|", 1)[1],
                          name=doc.get("display_name") or doc.get("name") or doc.get("platform_name"),
                          phone=doc.get("phone_e164") or (phones[0] if phones else None),
                          labels=tuple(doc.get("labels", ())),
                          fields=contact_fields.as_facts(doc.get("custom_fields", {})))


def identity_keys(tenant_id: str, doc: Doc) -> list[ConversationKey]:
    return [ConversationKey(tenant_id, *identity.split("|", 1)) for identity in doc.get("identities", ())]


def _identity(key: ConversationKey) -> str:
    return f"{key.channel_id}|{key.external_user_id}"


def _agent(doc: Doc) -> Agent:
    return read_stored(AgentSpec, doc).to_agent(doc["login"])  # _id, tenant_id, login: no fields of the spec
