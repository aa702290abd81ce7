"""Messenger / Instagram webhooks carry no name: contacts reads the customer's profile from the Graph API (faked
over HTTP by the journeys' provider) once, after the card exists, off the message path; an agent refreshes it
from the card; a platform that does not answer leaves the card as it was. Through the public APIs only."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from e2e_customer import AGENT, InstagramJourney
from e2e_journey import NotYet, eventually
from e2e_system import System

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240), pytest.mark.usefixtures("staffed")]


async def named_contact(journey: InstagramJourney, name: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any]:
        contact = await journey.one_contact()
        if contact.get("platform_name") != name:
            raise NotYet(str(contact))
        return contact

    return await eventually(probe, what=f"the contact named {name!r} from the platform")


async def refresh(journey: InstagramJourney, contact_id: str) -> httpx.Response:
    return await journey.client.post(f"{journey.system.url('contacts')}/v1/contacts/{contact_id}/refresh-profile",
                                     headers=journey.system.auth(AGENT, "agent"))


async def test_an_instagram_customer_gets_their_name_and_picture_once_and_on_refresh(
        system: System, http: httpx.AsyncClient) -> None:
    journey = InstagramJourney(system, http)
    igsid = journey.external_user_id
    system.provider.profiles[igsid] = {"name": "Inès Ortega", "username": "ines.o",
                                       "profile_pic": "https://cdn.example/ines-1.jpg"}
    first, _ = await journey.customer_writes("Hola, is the blue one in stock?")
    conversation, _ = await journey.open_conversation_with(first)
    contact = await named_contact(journey, "Inès Ortega")
    assert contact["avatar_url"] == "https://cdn.example/ines-1.jpg"
    [identity] = contact["identities"]
    assert (identity["platform_name"], identity["username"]) == ("Inès Ortega", "ines.o")


    async def conversation_named() -> None:
        found = await journey.conversations()
        if not found or found[0].get("customer_name") != "Inès Ortega":
            raise NotYet(str(found))

    await eventually(conversation_named, what="the conversation showing the platform's name")
    await journey.customer_writes("And in size 38?")
    await asyncio.sleep(1.0)  # a second lookup, if any, would be asked for by now
    assert [user for user, _ in system.provider.profile_requests if user == igsid] == [igsid]  # once
    assert ("name,username,profile_pic" in {fields for user, fields in system.provider.profile_requests
                                            if user == igsid})

    system.provider.profiles[igsid] = {"name": "Inès O.", "profile_pic": "https://cdn.example/ines-2.jpg"}
    refreshed = await refresh(journey, contact["id"])
    assert refreshed.status_code == 200, refreshed.text
    assert (refreshed.json()["platform_name"], refreshed.json()["avatar_url"]) == (
        "Inès O.", "https://cdn.example/ines-2.jpg")
    assert conversation["id"]


async def test_a_platform_that_does_not_answer_leaves_the_card_and_the_refresh_says_why(
        system: System, http: httpx.AsyncClient) -> None:
    journey = InstagramJourney(system, http)  # no profile registered: the fake Graph API answers error 100
    await journey.customer_writes("hello?")
    contact = await journey.one_contact()

    async def asked() -> None:
        if journey.external_user_id not in {user for user, _ in system.provider.profile_requests}:
            raise NotYet("no lookup yet")

    await eventually(asked, what="the profile lookup")
    assert (await journey.one_contact())["platform_name"] is None
    refused = await refresh(journey, contact["id"])
    assert refused.status_code == 502, refused.text
    assert refused.json()["error"]["code"] == "profile_unavailable"
    assert refused.json()["error"]["details"]["reason"] == "http_400"
