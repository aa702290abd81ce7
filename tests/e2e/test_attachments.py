"""An attachment on the timeline as an agent sees it, through the public APIs only (issue 14): pending from the
moment its message shows, stored once media has it, failed with the reason, and a retry (media's API) that
downloads it again through the topics."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from e2e_customer import AGENT, Journey, new_wamid
from e2e_journey import NotYet, eventually, png_bytes, whatsapp_image
from e2e_system import WHATSAPP, System

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240), pytest.mark.usefixtures("staffed")]
PNG = png_bytes(4, 3)


async def image_whose_file(journey: Journey, gone: bool = False) -> tuple[str, str]:
    """The customer sends an image the fake Graph API does not serve yet (404, retried) or never will (410)."""
    media_ref = f"e2e{uuid.uuid4().hex[:12]}"
    if gone:
        journey.system.provider.media_gone.add(media_ref)
    wamid = new_wamid()
    await journey.deliver(whatsapp_image(journey.phone, wamid, media_ref, int(time.time()), WHATSAPP.phone_number_id,
                                         caption="the receipt"))
    return wamid, media_ref


async def attachment(journey: Journey, conversation_id: str, wamid: str, state: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any]:
        entry = next(e for e in await journey.timeline(conversation_id) if e.get("provider_message_id") == wamid)
        media = entry.get("media") or []
        if [item["state"] for item in media] != [state]:
            raise NotYet(str(media))
        found: dict[str, Any] = media[0]
        return found

    return await eventually(probe, within=60.0, what=f"the attachment {state} on the timeline")


async def test_pending_at_once_then_stored(system: System, http: httpx.AsyncClient) -> None:
    journey = Journey(system, http)
    wamid, media_ref = await image_whose_file(journey)
    conversation, entries = await journey.open_conversation_with(wamid)
    [entry] = [e for e in entries if e.get("provider_message_id") == wamid]
    assert [(m["state"], m["attachment_id"]) for m in entry["media"]] == [("pending", f"{wamid}:0")]
    system.provider.media_files[media_ref] = PNG  # the provider serves it now: media's next attempt gets it
    stored = await attachment(journey, conversation["id"], wamid, "stored")
    assert (stored["mime_type"], stored["size_bytes"]) == ("image/png", len(PNG))


async def test_failed_with_its_reason_and_a_retry_downloads_it_again(system: System,
                                                                     http: httpx.AsyncClient) -> None:
    journey = Journey(system, http)
    wamid, media_ref = await image_whose_file(journey, gone=True)
    conversation, _ = await journey.open_conversation_with(wamid)
    failed = await attachment(journey, conversation["id"], wamid, "failed")
    assert (failed["reason"], failed["attempts"]) == ("http_410", 1)

    system.provider.media_gone.discard(media_ref)
    system.provider.media_files[media_ref] = PNG
    url = f"{system.url('media')}/v1/media/{failed['media_id']}/retry"
    retried = await http.post(url, headers=system.auth(AGENT, "agent"))
    assert retried.status_code == 202, retried.text
    assert retried.json()["state"] == "pending"
    stored = await attachment(journey, conversation["id"], wamid, "stored")
    assert stored["media_id"] == failed["media_id"] and stored["reason"] is None
    again = await http.post(url, headers=system.auth(AGENT, "agent"))
    assert (again.status_code, again.json()["error"]["code"]) == (409, "not_failed")
    record = await journey.get("media", f"/v1/media/{failed['media_id']}", login=AGENT, role="agent")
    assert (await http.get(record.json()["download_url"])).content == PNG
