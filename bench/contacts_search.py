"""Contacts benchmark: search latency p50/p99 over N contacts (default 100,000) in one tenant, per kind of query,
through the repository (the query the HTTP handler runs, without HTTP). Contacts are seeded with bulk inserts of
cards built by the domain (names with accents, E.164 phones, emails, 1% labelled `vip`, a custom field).

Run (test-profile infra up):
  eval "$(.venv/bin/python deploy/local/infra.py env --profile test)"; export PARLEY_MONGO_URI
  .venv/bin/python bench/contacts_search.py --count 100000 --samples 200
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydantic import SecretStr

from parley_common.mongo import mongo_client
from parley_common.settings import InfraSettings
from parley_contacts.adapters.collections import Collections
from parley_contacts.adapters.contacts_repo import ContactsRepository
from parley_contacts.domain.card import identity, new_card, with_keys
from parley_contacts.domain.search import Criteria, conditions

NOW = datetime.now(UTC)
FIRST = ["Ana", "José", "Chloé", "Li", "Olga", "Ahmed", "Mary", "Łukasz", "Zoë", "Søren", "Ines", "Kenji", "Ayşe",
         "Pedro", "Fatima", "Ivan", "Noor", "Emma", "Lucas", "Sofía"]
LAST = ["Silva", "Álvarez", "Martin", "Wei", "Petrova", "Khan", "Jones", "Nowak", "Müller", "Øster", "García",
        "Tanaka", "Y\u0131lmaz", "Costa", "Haddad", "Ivanov", "Rahman", "Dubois", "Rossi", "López"]


def card(n: int, rng: random.Random) -> dict[str, object]:
    contact_id = uuid.uuid4().hex
    phone = f"+44770{rng.randrange(10**7):07d}"
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}{n % 97:02d}"  # ~40,000 distinct names
    result = new_card(contact_id, "bench", NOW - timedelta(days=90), phones=[phone], platform_name=name,
                      identities=[identity("wa-main", phone[1:], phone=phone)])
    result["emails"] = [f"user{n}@example.com"]
    result["labels"] = ["vip"] if n % 100 == 0 else []
    result["custom_fields"] = {"tier": {"type": "text", "value": rng.choice(["gold", "silver", "bronze"])}}
    result["last_activity_at"] = NOW - timedelta(seconds=rng.randrange(30 * 86400))  # active in the last 30 days
    return with_keys(result)


async def seed(collections: Collections, count: int) -> list[dict[str, object]]:
    rng = random.Random(7)
    sample: list[dict[str, object]] = []
    started = time.perf_counter()
    for start in range(0, count, 1000):
        cards = [card(n, rng) for n in range(start, min(count, start + 1000))]
        await collections.contacts.insert_many(cards, ordered=False)
        sample += rng.sample(cards, 5)
    elapsed = time.perf_counter() - started
    print(f"seeded {count} contacts in {elapsed:.0f} s ({count / elapsed:,.0f} inserts/s, bulk of 1000)")
    return sample


def queries(sample: list[dict[str, object]], rng: random.Random) -> dict[str, list[Criteria]]:
    def pick() -> dict[str, object]:
        return rng.choice(sample)

    def phone(c: dict[str, object]) -> str:
        return str(c["phones"][0])  # type: ignore[index]

    def name(c: dict[str, object]) -> str:
        return str(c["platform_name"])

    def first_and_three(full: str) -> str:
        return full[:full.index(" ") + 4].lower()

    return {
        "phone prefix, 10 digits (~10 matches)": [Criteria(phone=phone(pick())[:11]) for _ in range(50)],
        "phone prefix, 7 digits (~1,000)": [Criteria(phone=phone(pick())[:8]) for _ in range(50)],
        "name prefix, first + 3 letters (~250)": [Criteria(name=first_and_three(name(pick()))) for _ in range(50)],
        "name prefix, full name (~3)": [Criteria(name=name(pick()).upper()) for _ in range(50)],
        "user id (exact)": [Criteria(user_id=phone(pick())[1:]) for _ in range(50)],
        "email (exact)": [Criteria(email=str(pick()["emails"][0])) for _ in range(50)],  # type: ignore[index]
        "label vip (1,000)": [Criteria(label="vip")] * 20,
        "no filter (all, newest first)": [Criteria()] * 20,
    }


async def main(args: argparse.Namespace) -> None:
    infra = InfraSettings(jwt_secret=SecretStr(secrets.token_hex(32)), namespace=f"bench{uuid.uuid4().hex[:8]}")
    client = mongo_client(infra.mongo_uri, "bench")
    collections = Collections(client[infra.database_name("contacts")])
    await collections.ensure_indexes()
    repo = ContactsRepository(collections)
    try:
        sample = await seed(collections, args.count)
        rng = random.Random(11)
        for label, criteria in queries(sample, rng).items():
            timings, sizes = [], []
            for index in range(args.samples):
                started = time.perf_counter()
                found = await repo.search("bench", conditions(criteria[index % len(criteria)]), args.limit,
                                          now=datetime.now(UTC))
                timings.append((time.perf_counter() - started) * 1000)
                sizes.append(len(found))
            timings.sort()
            p99 = timings[max(0, int(len(timings) * 0.99) - 1)]
            print(f"{label:<42} p50={statistics.median(timings):7.1f} ms  p99={p99:7.1f} ms  "
                  f"page={statistics.mean(sizes):.0f} (limit {args.limit})")
    finally:
        await client.drop_database(infra.database_name("contacts"))
        await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--limit", type=int, default=50)
    asyncio.run(main(parser.parse_args()))
