"""The outside review's probes (issue 13) against all five services running as real processes: each hostile
request gets a 4xx with a machine-readable code (or is accepted harmlessly), never a 500 or a retryable 503."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import pytest
from e2e_customer import AGENT, Journey, linked_media, media_records, send_image
from e2e_journey import png_bytes
from e2e_system import EMAIL, JWT_SECRET, TELEGRAM, TENANT, WHATSAPP, System

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240), pytest.mark.usefixtures("staffed")]

BEARER_PROBES = {"contacts": "/v1/contacts/search", "router": "/v1/conversations", "outbound": "/v1/saved-replies",
                 "media": "/v1/media/m_0"}
JSON_PROBES = {"contacts": ("POST", "/v1/contacts"), "router": ("PUT", "/v1/routing"),
               "outbound": ("POST", "/v1/messages"), "media": ("PUT", "/v1/media/m_0/legal-hold")}
MIB = 1024 * 1024


def token(**claims: Any) -> dict[str, str]:
    now = datetime.now(UTC)
    body = {"tenant": TENANT, "sub": "mallory", "roles": ["owner"], "iat": now, "exp": now + timedelta(hours=1),
            **claims}
    return {"Authorization": f"Bearer {jwt.encode(body, JWT_SECRET, algorithm='HS256')}"}


def code(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


async def test_correctly_signed_tokens_with_bad_claims_are_401_on_every_bearer_service(system: System) -> None:
    for service, path in BEARER_PROBES.items():
        # One keep-alive connection per service: a bad token must not reset it for the next request.
        async with httpx.AsyncClient(base_url=system.url(service), timeout=30,
                                     limits=httpx.Limits(max_connections=1)) as client:
            for claims in ({"roles": None}, {"roles": 5}, {"roles": "owner"}, {"sub": "x" * 5000},
                           {"tenant": 7}, {"tenant": "a$b"}):
                response = await client.get(path, headers=token(**claims))
                assert code(response) == (401, "invalid_token"), (service, claims, response.text)
            still = await client.get(path, headers=system.auth("supervisor.sam", "manager"))
            assert still.status_code in (200, 404), (service, still.text)


async def test_an_over_long_correlation_id_is_replaced_not_500(system: System, http: httpx.AsyncClient) -> None:
    given = "c" * 300
    api = await http.get(f"{system.url('contacts')}/v1/contacts/search", headers={
        **system.auth("supervisor.sam", "manager"), "X-Correlation-Id": given})
    update = {"update_id": 913_000_001, "message": {"message_id": 1, "date": int(time.time()), "text": "hi",
                                                    "chat": {"id": 913, "type": "private"},
                                                    "from": {"id": 913, "is_bot": False, "first_name": "Cy"}}}
    webhook = await http.post(f"{system.url('ingest')}/webhooks/telegram/{TELEGRAM.id}", json=update, headers={
        "X-Telegram-Bot-Api-Secret-Token": TELEGRAM.webhook_secret, "X-Correlation-Id": given})
    for response in (api, webhook):
        assert response.status_code == 200, response.text
        replaced = response.headers["X-Correlation-Id"]
        assert replaced != given and 0 < len(replaced) <= 128


async def send_until_answered(base_url: str, request_line: str, headers: dict[str, str], body: bytes,
                              chunked: bool, chunk_size: int = MIB) -> tuple[bytes, int]:
    """Sends the body piece by piece over a raw socket until the server answers: the status line and how much
    was sent by then. An HTTP client would write the whole body first, and lose the answer when the server closes
    with unread bytes (a TCP reset): so each piece waits a moment for an answer before the next is sent."""
    url = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    framing = {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(len(body))}
    head = "".join(f"{name}: {value}\r\n" for name, value in {"Host": "parley", **headers, **framing}.items())
    writer.write(f"{request_line} HTTP/1.1\r\n{head}\r\n".encode())
    status = asyncio.create_task(reader.readline())
    await asyncio.wait({status}, timeout=0.5)  # a declared length over the limit is answered at once
    sent = 0
    try:
        while sent < len(body) and not status.done():
            piece = body[sent:sent + chunk_size]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            await asyncio.wait_for(writer.drain(), 10)
            sent += len(piece)
            await asyncio.wait({status}, timeout=0.05)
        if chunked and not status.done():
            writer.write(b"0\r\n\r\n")
    except (ConnectionError, TimeoutError):
        pass  # the server answered and closed while we were still sending
    try:
        return await asyncio.wait_for(status, 30), sent
    finally:
        writer.close()


async def test_json_bodies_are_limited_on_every_service_also_when_chunked(system: System) -> None:
    headers = {**system.auth("supervisor.sam", "manager"), "Content-Type": "application/json"}
    big = json.dumps({"display_name": "x" * (20 * MIB)}).encode()
    for service, (method, path) in JSON_PROBES.items():
        for chunked in (False, True):
            status, sent = await send_until_answered(system.url(service), f"{method} {path}", headers, big,
                                                     chunked, chunk_size=256 * 1024)
            assert status.startswith(b"HTTP/1.1 413"), (service, chunked, status)
            assert sent < 4 * MIB, f"{service} read {sent / MIB:.0f} MiB before answering"


async def test_a_chunked_upload_is_stopped_at_the_limit_while_it_streams(system: System) -> None:
    """60 MiB without Content-Length to the e-mail channel (25 MB ceiling): the 413 comes while we still send."""
    part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
    headers = {**system.auth("agent.ann"), "Content-Type": "multipart/form-data; boundary=b"}
    status, sent = await send_until_answered(system.url("media"), f"POST /v1/media?channel_id={EMAIL.id}", headers,
                                             part + b"\0" * (60 * MIB), chunked=True)
    assert status.startswith(b"HTTP/1.1 413"), status
    assert sent < 40 * MIB, f"the server read {sent / MIB:.0f} MiB before answering"


async def test_path_ids_with_control_characters_dollar_or_thousands_of_characters_are_422(
        system: System, http: httpx.AsyncClient) -> None:
    auth = system.auth("supervisor.sam", "manager")
    spec = {"teams": [], "skills": []}
    for bad in ("ann%01x", "ann%00", "%24where", "a$b", "a" * 3000, "ann%E2%80%AEx"):
        probes = [http.put(f"{system.url('router')}/v1/agents/{bad}", json=spec, headers=auth),
                  http.get(f"{system.url('contacts')}/v1/contacts/{bad}", headers=auth),
                  http.get(f"{system.url('outbound')}/v1/windows/{WHATSAPP.id}/{bad}", headers=auth),
                  http.get(f"{system.url('media')}/v1/media/{bad}", headers=auth),
                  http.post(f"{system.url('router')}/v1/conversations/{bad}/close", json={}, headers=auth)]
        for response in await asyncio.gather(*probes):
            assert code(response) == (422, "validation_failed"), (bad[:20], str(response.url)[:80], response.text)


async def test_agent_capacities_priorities_and_routing_hours_are_validated(system: System,
                                                                           http: httpx.AsyncClient) -> None:
    auth, router = system.auth("supervisor.sam", "manager"), system.url("router")
    for spec in ({"default_capacity": 10**30}, {"capacity": {"whatsapp": 10**30}}, {"capacity": {"whatsapp": -1}},
                 {"default_capacity": -3}, {"default_capacity": 2.5}):
        response = await http.put(f"{router}/v1/agents/agent.cap", json=spec, headers=auth)
        assert code(response) == (422, "validation_failed"), (spec, response.text)
    for priority in (1.5, "2", 10**30, None):
        response = await http.post(f"{router}/v1/conversations/c1/priority", json={"priority": priority},
                                   headers=auth)
        assert code(response) == (422, "validation_failed"), (priority, response.text)
    before = (await http.get(f"{router}/v1/routing", headers=auth)).json()
    for hours in ({"timezone": "Mars/Olympus_Mons"}, {"timezone": "../../etc/passwd"}, {"opens": "25:99"},
                  {"closes": "not-a-time"}, {"weekdays": [-1, 99]}):
        response = await http.put(f"{router}/v1/routing", json=hours, headers=auth)
        assert code(response) == (422, "validation_failed"), (hours, response.text)
    assert (await http.get(f"{router}/v1/routing", headers=auth)).json() == before


async def test_contact_avatars_are_http_and_names_and_labels_hold_no_control_or_bidi(
        system: System, http: httpx.AsyncClient) -> None:
    auth, contacts = system.auth("supervisor.sam", "manager"), system.url("contacts")
    created = await http.post(f"{contacts}/v1/contacts", json={"phone": "+14155550199"}, headers=auth)
    assert created.status_code == 201, created.text
    card = f"{contacts}/v1/contacts/{created.json()['id']}"
    for patch in ({"avatar_url": "javascript:alert(1)"}, {"avatar_url": "file:///etc/passwd"},
                  {"avatar_url": "data:image/png;base64,AAAA"}, {"display_name": "Ann\x00"},
                  {"display_name": "Ann \u202egnp.exe"}):
        response = await http.patch(card, json=patch, headers=auth)
        assert response.status_code == 422, (patch, response.text)
    for label in ("vip\x00", "\u202evip", "v\u2066ip"):
        response = await http.post(f"{card}/labels", json={"add": [label]}, headers=auth)
        assert code(response) == (422, "invalid_label"), (label, response.text)
    named = await http.post(f"{contacts}/v1/contacts", json={"phone": "+14155550198", "display_name": "Bo\x00b"},
                            headers=auth)
    assert named.status_code == 422, named.text
    fine = await http.patch(card, json={"avatar_url": "https://cdn.example/a.png", "display_name": "Ann"},
                            headers=auth)
    assert fine.status_code == 200 and fine.json()["avatar_url"] == "https://cdn.example/a.png", fine.text


async def test_an_over_long_recipient_is_422_and_never_logged(system: System, http: httpx.AsyncClient) -> None:
    marker = "recipient-" + "z" * 700
    response = await http.post(f"{system.url('outbound')}/v1/messages", headers=system.auth("agent.ann"), json={
        "channel_id": WHATSAPP.id, "recipient": {"external_user_id": marker}, "content": {"text": "hi"}})
    assert code(response) == (422, "validation_failed"), response.text
    assert marker not in response.text
    assert marker not in system.services["outbound"].log.read_text(errors="replace")


async def test_non_ascii_signatures_are_refused_not_500(system: System, http: httpx.AsyncClient) -> None:
    body = json.dumps({"object": "whatsapp_business_account", "entry": []}).encode()
    good = hmac.new(WHATSAPP.app_secret.encode(), body, hashlib.sha256).hexdigest()
    for signature in (b"sha256=\xff" + good[1:].encode(), "sha256=é".encode()):
        response = await http.post(f"{system.url('ingest')}/webhooks/whatsapp/{WHATSAPP.id}", content=body,
                                   headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature})
        assert code(response) == (401, "invalid_signature"), response.text
    link = await http.get(f"{system.url('media')}/v1/media/m_0/content", params={
        "tenant": TENANT, "expires": str(int(time.time()) + 60), "signature": "é" * 64})
    assert code(link) == (403, "invalid_signature"), link.text


async def test_a_media_link_cannot_be_forged_from_what_a_provider_or_customer_knows(
        system: System, http: httpx.AsyncClient) -> None:
    journey = Journey(system, http)
    wamid, _ = await send_image(journey, png_bytes(3, 2), "receipt")
    conversation, _ = await journey.open_conversation_with(wamid)
    [media] = media_records((await linked_media(journey, conversation["id"], wamid))["media"])
    record = await journey.get("media", f"/v1/media/{media['media_id']}", login=AGENT, role="agent")
    assert record.status_code == 200, record.text
    # The id is keyed: the unkeyed derivation from tenant, channel and the provider's attachment id is not it.
    attachment = record.json()["attachment_id"]
    unkeyed = "m_" + hashlib.sha256(f"{TENANT}|{WHATSAPP.id}|{attachment}".encode()).hexdigest()[:32]
    assert media["media_id"] != unkeyed
    # A link signed with the former built-in key, with any expiry, is refused; the genuine link works.
    expires = int(time.time()) + 10 * 365 * 24 * 3600
    fields = (TENANT, media["media_id"], "original", str(expires))
    payload = b"".join(f"{len(field)}:{field};".encode() for field in fields)
    forged = hmac.new(b"change-me-media-links", payload, hashlib.sha256).hexdigest()
    minted = await http.get(f"{system.url('media')}/v1/media/{media['media_id']}/content", params={
        "tenant": TENANT, "variant": "original", "expires": str(expires), "signature": forged})
    assert code(minted) == (403, "invalid_signature"), minted.text
    assert (await http.get(record.json()["download_url"])).status_code == 200


async def test_an_idle_keep_alive_connection_outlives_the_clients_own_expiry(system: System) -> None:
    """A client (httpx: 5 s) must close an idle connection before the service does, or a request sent as the
    service closes it fails with a read error: each service keeps one open well past 5 s (`KEEP_ALIVE_SECONDS`)."""
    address = urlsplit(system.url("router"))
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    request = f"GET /healthz HTTP/1.1\r\nHost: {address.netloc}\r\n\r\n".encode()
    try:
        for _ in range(2):
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 200"), head
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            await reader.readexactly(length)
            await asyncio.sleep(6)  # idle past httpx's and uvicorn's default 5 s
            assert not reader.at_eof(), "the service closed an idle connection a client could still be reusing"
    finally:
        writer.close()
