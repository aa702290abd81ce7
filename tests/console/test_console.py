"""The agent console in a real browser (Debian's chromium) against the real system: the five services and the
console as processes on the local Kafka, MongoDB and Redis, the providers faked over HTTP. Every screen is
scanned with axe-core (no serious or critical violation) and saved as a screenshot; no console error anywhere."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
from console_browser import DESKTOP, PHONE, Browser, Screen
from console_customer import Customer, InstagramCustomer, TelegramCustomer
from e2e_journey import png_bytes
from e2e_system import CONSOLE, EMAIL, TELEGRAM, TENANT, WHATSAPP, System
from playwright.sync_api import Locator, Page, Route, ViewportSize, expect

from parley_common.auth import issue_token

AGENT, OTHER_AGENT, SUPERVISOR, NEW_AGENT = "alice", "bob", "sam", "carol"
DAY = 24 * 3600


def token(system: System, login: str, role: str = "agent") -> str:
    return system.auth(login, role)["Authorization"].removeprefix("Bearer ")


def signed_in(browser: Browser, system: System, login: str, role: str = "agent",
              viewport: ViewportSize = DESKTOP) -> Screen:
    screen = browser.screen(system.url(CONSOLE), token(system, login, role), viewport)
    expect(screen.page.locator(".topbar .who")).to_have_text(f"{login} · {role}")  # hidden on a phone
    return screen


def on_duty(browser: Browser, system: System, login: str, viewport: ViewportSize = DESKTOP) -> Screen:
    """An agent signed in, online (offers come to them) and following the live stream."""
    screen = signed_in(browser, system, login, viewport=viewport)
    screen.page.get_by_label("My presence").select_option("online")
    expect(screen.page.get_by_role("status").filter(has_text="Live")).to_be_visible()
    expect(screen.page.get_by_role("combobox", name="My presence")).to_have_value("online")
    return screen


def goes_offline(screen: Screen) -> None:
    """The agent chooses Offline, and the router has it before the test goes on: the screen shows the choice at
    once, but its heartbeat may still be on its way, and a screen closed then cuts it short — the router went on
    offering them conversations until their presence expired, a minute later (a later test's customer then went
    to them, not to the agent on duty)."""
    page = screen.page
    with page.expect_response(lambda r: r.url.endswith("/v1/agents/me/heartbeat")
                              and '"offline"' in (r.request.post_data or "")) as beat:
        page.get_by_label("My presence").select_option("offline")
    assert beat.value.ok, beat.value.text()
    expect(page.locator(".dot-offline")).to_be_visible()


def assert_clean(screen: Screen, name: str) -> None:
    assert screen.check(name) == []
    assert screen.errors == []


def refused_as_expected(screen: Screen, status: int, path: str) -> None:
    """The browser logs every 4xx answer as a failed resource: forgets those of a refusal the test provoked."""
    screen.errors = [error for error in screen.errors if not (f"status of {status} " in error and path in error)]


def arrived(screen: Screen, customer: Customer) -> Locator:
    """The customer's conversation in the screen's list, once it has arrived (live: the page is never reloaded)."""
    item = conversation_item(screen, customer)
    expect(item).to_be_visible(timeout=30_000)
    return item


def tab_of(customer: Customer) -> str:
    """The inbox tab that holds the customer's conversation (queued, or offered to whichever agent had room)."""
    return {"queued": "Queued", "assigned": "All assigned"}[customer.conversation_status(SUPERVISOR, "manager")]


def staff(system: System, login: str, capacity: int) -> None:
    """`login` in the support team with room for `capacity` conversations per channel type, as a manager sets it."""
    with httpx.Client(base_url=system.url(CONSOLE), headers=system.auth(SUPERVISOR, "manager"), timeout=30) as api:
        staffed = api.put(f"/v1/agents/{login}", json={"teams": ["support"], "default_capacity": capacity})
        assert staffed.status_code == 200, staffed.text


def conversation_item(screen: Screen, customer: Customer) -> Locator:
    return screen.page.locator(".list li.item", has_text=customer.name)


def opened(screen: Screen, customer: Customer) -> Page:
    """The customer's conversation open on the screen, from the tab that holds it."""
    page = screen.page
    page.get_by_role("tab", name=re.compile(tab_of(customer))).click()
    arrived(screen, customer).get_by_role("button").click()
    expect(page.locator("#conversation-title")).to_have_text(customer.name)
    return page


def a_customer_writes(browser: Browser, system: System, name: str, text: str) -> tuple[Screen, Customer]:
    """Alice on duty, and a new customer's first message open on her screen."""
    alice = on_duty(browser, system, AGENT)
    customer = Customer(system, name)
    customer.writes(text)
    opened(alice, customer)
    return alice, customer


def test_sign_in_page_and_roles(system: System, browser: Browser) -> None:
    anonymous = browser.screen(system.url(CONSOLE), None)
    expect(anonymous.page.get_by_role("heading", name="Parley console")).to_be_visible()
    assert_clean(anonymous, "sign-in")
    anonymous.page.get_by_label("Access token").fill(token(system, AGENT))
    anonymous.page.get_by_role("button", name="Sign in").click()
    expect(anonymous.page.locator(".topbar .who")).to_have_text(f"{AGENT} · agent")
    # Agents get the inbox only: no supervisor view, no management screens.
    sections = anonymous.page.get_by_role("navigation", name="Sections")
    expect(sections.get_by_role("button")).to_have_text(["Inbox"])
    anonymous.close()

    # A token the services refuse (here: signed with another key) leads back to the sign-in page.
    forged = browser.screen(system.url(CONSOLE), issue_token("another-key-of-at-least-32-bytes-long", TENANT,
                                                             "mallory", ["owner"]))
    expect(forged.page.get_by_role("heading", name="Parley console")).to_be_visible()
    forged.close()

    manager = signed_in(browser, system, SUPERVISOR, "manager")
    expect(manager.page.get_by_role("navigation", name="Sections").get_by_role("button")).to_have_text(
        ["Inbox", "Supervisor"])
    manager.page.get_by_role("button", name="Filters").click()
    expect(manager.page.get_by_label("Unanswered only")).to_be_visible()
    assert_clean(manager, "filters")
    manager.page.keyboard.press("?")
    shortcuts = manager.page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(shortcuts).to_contain_text("next / previous conversation")
    assert_clean(manager, "shortcuts")
    shortcuts.get_by_role("button", name="Close").click()
    expect(shortcuts).to_be_hidden()
    manager.close()


def test_an_agent_answers_a_live_customer_and_hands_over(system: System, browser: Browser) -> None:
    alice = on_duty(browser, system, AGENT)
    page = alice.page
    customer = Customer(system, "Dana")

    # A customer writes: the conversation appears without a reload, unread, waiting, offered to alice.
    customer.writes("Hello, my parcel never arrived")
    item = arrived(alice, customer)
    expect(item.get_by_text("new")).to_be_visible()
    expect(item.get_by_text(re.compile(r"waits \d+"))).to_be_visible()
    expect(page.get_by_role("tab", name=re.compile("Mine"))).to_contain_text("1")
    assert_clean(alice, "inbox")

    page.keyboard.press("j")  # keyboard-first: the first conversation opens
    expect(page.locator("#conversation-title")).to_have_text(customer.name)
    expect(page.locator(".timeline .inbound")).to_contain_text("Hello, my parcel never arrived")
    expect(page.get_by_role("status").filter(has_text="Window open")).to_be_visible()
    accept = page.get_by_role("button", name=re.compile(r"^Accept \d+m"))  # the offer, with its countdown
    expect(accept).to_be_visible()
    page.keyboard.press("a")
    expect(page.locator(".timeline .activity", has_text="Offer accepted by alice")).to_be_visible()
    expect(accept).to_be_hidden()

    # The reply goes out with Enter; the ticks follow the provider's receipts.
    page.keyboard.press("r")
    page.keyboard.type("Sorry to hear that!")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("Let me check.")
    page.keyboard.press("Enter")
    reply = page.locator(".timeline .outbound", has_text="Let me check.")
    expect(reply.locator(".ticks")).to_have_attribute("data-status", "sent", timeout=30_000)
    expect(reply.get_by_title("sent by alice")).to_be_visible()  # the sender's login on hover
    [sent] = [e for e in customer.outbound_entries(AGENT)
              if e["content"]["text"] == "Sorry to hear that!\nLet me check."]
    customer.reports(sent["provider_message_id"], "delivered")
    expect(reply.locator(".ticks")).to_have_attribute("data-status", "delivered", timeout=30_000)
    customer.reports(sent["provider_message_id"], "read")
    expect(reply.locator(".ticks")).to_have_attribute("data-status", "read", timeout=30_000)

    # A private note stays on the timeline, styled apart (Escape leaves the composer, n switches to a note).
    page.keyboard.press("Escape")
    page.keyboard.press("n")
    page.keyboard.type("Parcel 4471 shows as lost by the carrier")
    page.keyboard.press("Enter")
    expect(page.locator(".timeline .note", has_text="Parcel 4471")).to_be_visible()

    # A file goes out: uploaded through the console, sent, shown with its preview.
    page.get_by_label("Reply", exact=True).check()
    page.locator(".attach input[type=file]").set_input_files(
        files=[{"name": "label.png", "mimeType": "image/png", "buffer": png_bytes(40, 30)}])
    page.get_by_role("button", name="Send", exact=True).click()
    with_file = page.locator(".timeline .outbound", has=page.locator(".attachment"))
    expect(with_file.locator("img")).to_be_visible(timeout=30_000)
    expect(with_file.locator(".ticks")).to_have_attribute("data-status", "sent", timeout=30_000)
    assert_clean(alice, "conversation")

    # Transfer with a comment: bob sees it arrive in his inbox live, and closes it with a note.
    bob = on_duty(browser, system, OTHER_AGENT)
    page.bring_to_front()
    page.keyboard.press("Escape")
    page.keyboard.press("x")
    dialog = page.get_by_role("dialog", name="Transfer the conversation")
    dialog.get_by_label("To").select_option(f"agent:{OTHER_AGENT}")
    dialog.get_by_label("Comment (shown on the timeline)").fill("Bob handles carrier claims")
    assert_clean(alice, "transfer-dialog")
    dialog.get_by_role("button", name="Transfer").click()
    expect(page.locator(".timeline .activity", has_text="Bob handles carrier claims")).to_be_visible()
    alice.close()

    item = arrived(bob, customer)
    item.get_by_role("button").click()
    bob.page.get_by_role("button", name="Close", exact=True).click()
    dialog = bob.page.get_by_role("dialog", name="Close the conversation")
    dialog.get_by_label("Closing note").fill("Refund issued")
    assert_clean(bob, "close-dialog")
    dialog.get_by_role("button", name="Close").click()
    expect(bob.page.locator(".timeline .activity", has_text="Closed")).to_be_visible()
    expect(bob.page.locator(".timeline .activity", has_text="Refund issued")).to_be_visible()
    assert_clean(bob, "closed")
    goes_offline(bob)  # bob's shift ends: offers go to alice only
    bob.close()


def test_a_template_goes_out_once_the_window_has_closed(system: System, browser: Browser) -> None:
    alice = on_duty(browser, system, AGENT)
    page = alice.page
    customer = Customer(system, "Ravi")
    customer.writes("Is my order ready?", at=time.time() - DAY - 3600)

    item = arrived(alice, customer)
    item.get_by_role("button").click()
    expect(page.get_by_role("status").filter(has_text="Window closed")).to_be_visible(timeout=30_000)
    expect(page.get_by_label("Reply to the customer")).to_be_disabled()

    # the template declares a date and a dropdown variable (the text kind is New conversation's): each is asked
    # for in its own control, and the template cannot go until both are filled
    picker = page.get_by_role("form", name="Template")
    picker.get_by_label("Template").select_option("delivery_slot/en_US")
    send = picker.get_by_role("button", name="Send template")
    day, slot = picker.get_by_label(re.compile("Variable day")), picker.get_by_label(re.compile("Variable slot"))
    expect(day).to_have_attribute("type", "date")
    day.fill("2030-01-15")
    expect(send).to_be_disabled()
    expect(slot.locator("option")).to_have_text(["choose…", "morning", "afternoon"])
    slot.select_option("afternoon")
    expect(picker.get_by_label("Preview")).to_contain_text("We deliver on 2030-01-15 in the afternoon.")
    assert_clean(alice, "template-picker")
    send.click()
    sent = page.locator(".timeline .outbound", has_text="delivery_slot")
    expect(sent.locator(".ticks")).to_have_attribute("data-status", "sent", timeout=30_000)
    delivered = system.provider.sends_to(customer.phone)[-1]["template"]
    assert delivered["name"] == "delivery_slot"
    assert {"2030-01-15", "afternoon"} <= set(re.findall(r"2030-01-15|afternoon", str(delivered)))
    alice.close()


def a_colleague_labels_a_new_client(system: System, label: str) -> None:
    """Bob creates a client by phone (nobody's conversation: no routing) and labels their card, through the console."""
    with httpx.Client(base_url=system.url(CONSOLE), headers=system.auth(OTHER_AGENT), timeout=30) as api:
        created = api.post("/v1/contacts", json={"phone": f"+{Customer(system, 'Labelled').phone}"})
        assert created.status_code == 201, created.text
        labelled = api.post(f"/v1/contacts/{created.json()['id']}/labels", json={"add": [label], "remove": []})
        assert labelled.status_code == 200, labelled.text


MENTIONS_READ = ("performance.getEntriesByType('resource')"
                 ".some(entry => entry.name.endsWith('/v1/contacts/mentions') && entry.responseEnd > 0)")


def test_the_contact_card_and_a_saved_reply(system: System, browser: Browser) -> None:
    # bob is at his desk before he is mentioned: his screen has read his mentions once and follows the live stream
    bob = signed_in(browser, system, OTHER_AGENT)
    expect(bob.page.get_by_role("status").filter(has_text="Live")).to_be_visible()
    bob.page.wait_for_function(MENTIONS_READ)
    expect(bob.page.get_by_role("button", name="Mentions, 0 new")).to_be_visible()
    alice, customer = a_customer_writes(browser, system, "Card", "Can you check order 4471?")
    page = alice.page
    card = page.get_by_role("complementary", name=customer.name)
    expect(card.locator(".facts")).to_contain_text(f"+{customer.phone}", timeout=30_000)

    card.get_by_label("Add a label").fill("vip")
    card.get_by_role("button", name="Add", exact=True).first.click()
    expect(card.locator(".labels")).to_contain_text("vip")
    expect(card.locator("#label-suggestions option[value='vip']")).to_have_count(1)  # the tenant's from now on
    # a label a colleague gives another client meanwhile is suggested once the field is entered again
    theirs = f"from-bob-{uuid.uuid4().hex[:6]}"
    a_colleague_labels_a_new_client(system, theirs)
    page.get_by_label("Reply to the customer").focus()
    card.get_by_label("Add a label").focus()
    expect(card.locator(f"#label-suggestions option[value='{theirs}']")).to_have_count(1)
    card.get_by_label("Custom field").fill("order")
    card.get_by_label("Value").fill("4471")
    card.get_by_role("button", name="Set").click()
    expect(card.locator(".facts")).to_contain_text("4471")
    card.get_by_label("Add a comment (use @login to mention)").fill("@bob the carrier owes us this one")
    card.get_by_role("button", name="Add", exact=True).last.click()
    expect(card.locator(".comments")).to_contain_text("@bob the carrier owes us this one")
    assert_clean(alice, "contact-card")
    # bob is told at once, without a reload (the console asks for mentions only when the stream pushes one or
    # reconnects): his badge counts it, the list shows who wrote it on which customer
    mentions = bob.page.get_by_role("button", name="Mentions, 1 new")
    expect(mentions).to_be_visible(timeout=10_000)
    mentions.click()
    listed = bob.page.get_by_role("dialog", name="Mentions")
    expect(listed).to_contain_text(f"alice on +{customer.phone}")  # the card has no name of its own: its phone
    expect(listed).to_contain_text("@bob the carrier owes us this one")
    assert_clean(bob, "mentions")
    listed.get_by_role("button", name="Close").click()
    expect(bob.page.get_by_role("button", name="Mentions, 0 new")).to_be_visible()
    bob.close()
    page.bring_to_front()

    page.get_by_label("Saved reply").select_option(label="On it")
    page.get_by_role("button", name="Send saved reply").click()
    sent = page.locator(".timeline .outbound", has_text="Thanks for waiting, we are on it.")
    expect(sent.locator(".ticks")).to_have_attribute("data-status", "sent", timeout=30_000)

    # The provider reports it undeliverable: the tick turns to a failure with the provider's reason.
    [entry] = [e for e in customer.outbound_entries(AGENT) if "Thanks for waiting" in (e.get("text") or "")]
    customer.never_gets(entry["provider_message_id"], "Re-engagement message")
    expect(sent.locator(".ticks")).to_have_attribute("data-status", "failed", timeout=30_000)
    expect(sent.locator(".ticks")).to_have_attribute("title", re.compile("Re-engagement message"))
    expect(sent.locator(".fail-reason")).to_contain_text("Re-engagement message")

    # A saved reply's placeholder is filled from the card's custom field set above. Outbound learns the field from
    # contacts' event: until it has, it refuses with saved_reply_field_missing and the agent sends it again.
    deadline = time.monotonic() + 30
    while True:
        page.get_by_label("Saved reply").select_option(label="Order status")
        with page.expect_response(lambda r: r.url.endswith("/v1/messages") and r.request.method == "POST") as answer:
            page.get_by_role("button", name="Send saved reply").click()
        if answer.value.ok:
            break
        assert "saved_reply_field_missing" in answer.value.text() and time.monotonic() < deadline, answer.value.text()
        refused_as_expected(alice, 422, "/v1/messages")
        time.sleep(0.5)
    filled = page.locator(".timeline .outbound", has_text="Order 4471 is on its way.")
    expect(filled.locator(".ticks")).to_have_attribute("data-status", "sent", timeout=30_000)
    assert any("Order 4471 is on its way." in str(send) for send in system.provider.sends_to(customer.phone))

    # Closed, then the customer writes again: the new conversation's card lists the closed one (their history).
    page.keyboard.press("Escape")
    page.keyboard.press("c")
    page.get_by_role("dialog", name="Close the conversation").get_by_role("button", name="Close").click()
    expect(page.locator(".timeline .activity", has_text="Closed")).to_be_visible()
    customer.writes("One more thing")
    expect(conversation_item(alice, customer).filter(has_text="Offered")).to_be_visible(timeout=30_000)
    conversation_item(alice, customer).filter(has_text="Offered").get_by_role("button").click()
    card = page.get_by_role("complementary", name=customer.name)
    expect(card.locator(".others")).to_contain_text("closed", timeout=30_000)
    # the label given above is now the tenant's vocabulary: suggested when labelling
    expect(card.locator("#label-suggestions option[value='vip']")).to_have_count(1)
    alice.close()


def test_the_card_shows_the_customers_picture_through_the_console(system: System, browser: Browser) -> None:
    """Instagram's profile names a picture on Meta's CDN (here the fake provider): the card shows it, fetched by
    contacts and served from the console's origin — the agent's browser never asks the platform."""
    customer = InstagramCustomer(system, "Ines")
    system.provider.pictures[customer.user_id] = png_bytes(64, 48)
    system.provider.profiles[customer.user_id] = {
        "name": customer.name, "profile_pic": f"{system.provider.base_url}/pictures/{customer.user_id}"}
    customer.writes("Do you have this in blue?")
    sam = signed_in(browser, system, SUPERVISOR, "manager")
    asked: list[str] = []
    sam.page.on("request", lambda request: asked.append(request.url))
    page = opened(sam, customer)  # listed by the profile's name: the look-up has happened
    picture = page.get_by_role("complementary", name=customer.name).get_by_role(
        "img", name=f"Picture of {customer.name}")
    expect(picture).to_be_visible(timeout=30_000)
    assert picture.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [64, 48]
    assert not [url for url in asked if url.startswith(system.provider.base_url)]
    assert_clean(sam, "contact-card-picture")

    # a customer without a picture keeps the initials
    plain = Customer(system, "Plain")
    plain.writes("No picture here")
    opened(sam, plain)
    card = page.get_by_role("complementary", name=plain.name)
    expect(card.locator("div.avatar")).to_be_visible()
    expect(card.locator("img.avatar")).to_have_count(0)
    sam.close()


def test_a_change_made_before_the_live_stream_started_is_shown_once_it_has(system: System, browser: Browser) -> None:
    """The screen reads its list, then starts following the live stream, and the router follows changes only while
    someone watches: a change made in between is on neither. Here the stream is held off (503) until the customer
    was renamed; once it starts, the list shows the new name — no other change comes to bring it."""
    customer = Customer(system, "Before")
    customer.writes("Hello before the stream")
    tab = tab_of(customer)
    stream_held = [True]

    def stream(route: Route) -> None:
        if stream_held[0]:
            route.fulfill(status=503, json={"error": {"code": "held_by_the_test", "message": "not yet"}})
        else:
            route.continue_()

    browser.context.route("**/v1/conversations/stream", stream)
    try:
        sam = signed_in(browser, system, SUPERVISOR, "manager")
        page = sam.page
        page.get_by_role("tab", name=re.compile(tab)).click()
        expect(conversation_item(sam, customer)).to_be_visible(timeout=30_000)
        renamed = f"Renamed {uuid.uuid4().hex[:6]}"
        with httpx.Client(base_url=system.url(CONSOLE), headers=system.auth(SUPERVISOR, "manager"), timeout=30) as api:
            contact = api.get("/v1/contacts/search", params={"phone": f"+{customer.phone}"}).json()["items"][0]
            assert api.patch(f"/v1/contacts/{contact['id']}", json={"display_name": renamed}).status_code == 200
            deadline = time.monotonic() + 30  # the router shows it on the conversation (its event goes unseen)
            while renamed not in api.get("/v1/conversations", params={"q": customer.search}).text:
                assert time.monotonic() < deadline, "the router never showed the new name"
                time.sleep(0.2)
        expect(page.locator(".list li.item", has_text=renamed)).to_have_count(0)
        stream_held[0] = False
        expect(page.locator(".list li.item", has_text=renamed)).to_be_visible(timeout=30_000)
    finally:
        browser.context.unroute("**/v1/conversations/stream", stream)
    sam.close()


def test_a_failed_attachment_shows_its_reason_and_is_retried(system: System, browser: Browser) -> None:
    alice, customer = a_customer_writes(browser, system, "Receipt", "I will send you the receipt")
    page = alice.page
    # Media learns who may see a conversation from the router's events: under load the message (and its failed
    # attachment) can reach the screen before media lets alice read it (404). Every first look-up is made to
    # meet that here, so the screen's recovery (ask again) is what this test always goes through.
    refused_once: set[str] = set()

    def unknown_at_first(route: Route) -> None:
        if route.request.method == "GET" and route.request.url not in refused_once:
            refused_once.add(route.request.url)
            route.fulfill(status=404, json={"error": {"code": "media_not_found", "message": "no such media"}})
        else:
            route.continue_()

    page.route(re.compile(r"/v1/media/[^/?]+$"), unknown_at_first)

    # The provider answers 410 for the file: media gives up at once and the timeline says why.
    media_ref = f"console{uuid.uuid4().hex[:12]}"
    system.provider.media_gone.add(media_ref)
    customer.sends_image(media_ref, "the receipt")
    expect(page.locator(".timeline .inbound p.text", has_text=re.compile("^the receipt$"))).to_be_visible(
        timeout=30_000)
    failed = page.locator(".timeline .attachment.failed")
    expect(failed).to_contain_text("Attachment failed: http_410", timeout=60_000)  # the e2e module allows media as long
    assert refused_once, "the screen never met media's 404"
    refused_as_expected(alice, 404, "/v1/media/")
    assert_clean(alice, "attachment-failed")

    # The provider serves it now: Retry downloads it again (media's retries topic) and the preview shows.
    system.provider.media_gone.discard(media_ref)
    system.provider.media_files[media_ref] = png_bytes(4, 3)
    failed.get_by_role("button", name="Retry").click()
    expect(page.locator(".timeline .attachment img")).to_be_visible(timeout=30_000)
    expect(failed).to_have_count(0)
    assert_clean(alice, "attachment-retried")
    alice.close()


def test_a_reply_sent_again_after_an_error_goes_out_once(system: System, browser: Browser) -> None:
    alice, customer = a_customer_writes(browser, system, "Twice", "Are you there?")
    page = alice.page
    # A 503 can come after outbound stored the message (its answer lost, or a store slow after the write): the
    # first send is made to meet that, and the agent sends the draft again.
    keys: list[str] = []
    answers: list[dict[str, Any]] = []

    def stored_but_answered_503(route: Route) -> None:
        keys.append(route.request.post_data_json["idempotency_key"])
        answer = route.fetch()
        answers.append(answer.json())
        if len(keys) == 1:
            route.fulfill(status=503, json={"error": {"code": "database_unavailable",
                                                      "message": "the database did not answer in time"}})
        else:
            route.fulfill(response=answer)

    page.route(re.compile(r"/v1/messages$"), stored_but_answered_503)
    page.keyboard.press("r")
    page.keyboard.type("Yes, one moment.")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("database_unavailable")
    # the draft is still there: the same message again. Its answer is waited for: the first send, stored, shows
    # as sent on the timeline by itself, possibly before this one has been answered
    with page.expect_response(lambda r: r.url.endswith("/v1/messages") and r.request.method == "POST") as again:
        page.keyboard.press("Enter")
    assert again.value.ok, again.value.text()
    reply = page.locator(".timeline .outbound", has_text="Yes, one moment.")
    expect(reply.locator(".ticks")).to_have_attribute("data-status", "sent", timeout=30_000)
    assert len(keys) == 2 and keys[0] == keys[1]
    assert answers[1]["duplicate"] is True and answers[1]["message_id"] == answers[0]["message_id"]
    assert [e["content"]["text"] for e in customer.outbound_entries(AGENT)].count("Yes, one moment.") == 1
    assert [body.get("text", {}).get("body") for body in system.provider.sends_to(customer.phone)].count(
        "Yes, one moment.") == 1
    expect(reply).to_have_count(1)
    refused_as_expected(alice, 503, "/v1/messages")
    assert_clean(alice, "sent-again")

    page.keyboard.type("A second message.")  # a new draft is a new message
    page.keyboard.press("Enter")
    expect(page.locator(".timeline .outbound", has_text="A second message.")).to_have_count(1, timeout=30_000)
    assert len(keys) == 3 and keys[2] != keys[0]

    # A refusal (4xx) is stored by outbound under its key: the same draft sent again is a new attempt, a new key.
    page.unroute(re.compile(r"/v1/messages$"))
    refused: list[str] = []

    def refused_at_first(route: Route) -> None:
        refused.append(route.request.post_data_json["idempotency_key"])
        if len(refused) == 1:
            route.fulfill(status=422, json={"error": {"code": "customer_blocked_bot",
                                                      "message": "the customer blocked the bot"}})
        else:
            route.continue_()

    page.route(re.compile(r"/v1/messages$"), refused_at_first)
    page.keyboard.type("Back now?")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("customer_blocked_bot")
    page.keyboard.press("Enter")
    expect(page.locator(".timeline .outbound", has_text="Back now?")).to_have_count(1, timeout=30_000)
    assert len(refused) == 2 and refused[0] != refused[1]
    refused_as_expected(alice, 422, "/v1/messages")
    assert_clean(alice, "sent-after-a-refusal")
    alice.close()


def test_a_message_announced_before_it_is_stored_still_shows(system: System, browser: Browser) -> None:
    alice, customer = a_customer_writes(browser, system, "Early", "First words")
    page = alice.page
    # The router announces a message just before it stores it: under load the screen's reload can come first. The
    # first timeline answers after the announcement are made to lack the message (and to arrive after a later one),
    # so the screen has to ask again until the message is there.
    held_back: list[str] = []

    def not_stored_yet(route: Route) -> None:
        answer = route.fetch()
        page_of_entries = answer.json()
        without = [entry for entry in page_of_entries["items"] if entry.get("text") != "Second words"]
        if len(without) < len(page_of_entries["items"]) and len(held_back) < 2:
            held_back.append(route.request.url)
            time.sleep(0.3)  # answered after the screen's next request, if it made one meanwhile
            route.fulfill(response=answer, json={**page_of_entries, "items": without})
        else:
            route.fulfill(response=answer)

    page.route(re.compile(r"/v1/conversations/[^/]+/timeline(\?|$)"), not_stored_yet)
    customer.writes("Second words")
    expect(page.locator(".timeline .inbound p.text", has_text=re.compile("^Second words$"))).to_be_visible(
        timeout=30_000)
    assert held_back, "the screen never met a timeline without the announced message"
    assert_clean(alice, "announced-before-stored")
    alice.close()


def test_a_card_contacts_does_not_show_yet_is_asked_for_again(system: System, browser: Browser) -> None:
    """A new customer's conversation names their card as it opens; contacts stores it (or learns that this agent
    may see it) a moment later, under load seconds later. The card's first answers are made 404: the card reads
    "No contact card yet." and shows once contacts answers, without a reload and without an error."""
    alice = on_duty(browser, system, AGENT)
    page = alice.page
    refused: list[str] = []

    def not_stored_yet(route: Route) -> None:
        if len(refused) < 2:
            refused.append(route.request.url)
            route.fulfill(status=404, json={"error": {"code": "contact_not_found", "message": "no such contact"}})
        else:
            route.continue_()

    page.route(re.compile(r"/v1/contacts/[0-9a-f]{32}$"), not_stored_yet)
    customer = Customer(system, "Nadia")
    customer.writes("Is anyone there?")
    opened(alice, customer)
    card = page.get_by_role("complementary", name=customer.name)
    expect(card.locator(".facts")).to_contain_text(f"+{customer.phone}", timeout=30_000)
    assert len(refused) == 2, refused
    expect(card.get_by_role("alert")).to_have_count(0)
    refused_as_expected(alice, 404, "/v1/contacts/")
    assert_clean(alice, "card-not-stored-yet")
    alice.close()


def test_a_long_conversation_opens_on_its_newest_messages_and_loads_earlier_ones(system: System,
                                                                                  browser: Browser) -> None:
    alice = on_duty(browser, system, AGENT)
    customer = Customer(system, "Chatty")
    texts = [f"Message number {n}" for n in range(1, 131)]
    first_at = time.time() - 200  # a second apart, all within the window
    for start in range(0, len(texts), 44):  # a webhook may carry many messages
        customer.writes_many(texts[start:start + 44], first_at + start)
    customer.wait_for_messages(AGENT, len(texts))
    page = opened(alice, customer)
    message = page.locator(".timeline .inbound p.text")
    expect(message.filter(has_text=re.compile("^Message number 130$"))).to_be_visible()
    expect(message.filter(has_text=re.compile("^Message number 1$"))).to_have_count(0)
    assert message.count() <= 100  # the newest page only
    was_first = message.filter(has_text=re.compile(f"^{re.escape(message.first.inner_text())}$"))
    page.get_by_role("button", name="Load earlier").click()  # scrolled up to it: the first message in view
    expect(message.filter(has_text=re.compile("^Message number 1$"))).to_have_count(1)
    expect(was_first).to_be_in_viewport()  # what the agent was reading stays in place, the earlier ones above
    expect(page.get_by_role("button", name="Load earlier")).to_have_count(0)  # the conversation's start
    expect(message).to_have_count(130)  # each message once
    customer.writes("Message number 131")  # live: the newest page again, the earlier pages kept
    expect(message.filter(has_text=re.compile("^Message number 131$"))).to_be_visible(timeout=30_000)
    expect(message).to_have_count(131)
    assert_clean(alice, "timeline-earlier")
    alice.close()


def test_the_customers_edit_deletion_and_reaction_and_a_formatted_mail_show_live(system: System,
                                                                                  browser: Browser) -> None:
    alice = on_duty(browser, system, AGENT)
    page = alice.page
    customer = Customer(system, "Edits")
    first = customer.writes("Pick-up at 5")
    second = customer.writes("My card is 4111 1111 1111 1111")
    page.get_by_role("tab", name=re.compile(tab_of(customer))).click()
    arrived(alice, customer).get_by_role("button").click()
    expect(page.locator(".timeline .inbound", has_text="My card is")).to_be_visible(timeout=30_000)

    # Coexistence edit and deletion, then a reaction: the open timeline changes in place (the live stream).
    customer.changes({"type": "edit", "edit": {"original_message_id": first, "message": {
        "type": "text", "text": {"body": "Pick-up at 6"}}}})
    customer.changes({"type": "revoke", "revoke": {"original_message_id": second}})
    customer.changes({"type": "reaction", "reaction": {"message_id": first, "emoji": "\N{THUMBS UP SIGN}"}})
    edited = page.locator(f'.timeline [data-entry="in:{first}"]')
    expect(edited.locator("p.text").first).to_have_text("Pick-up at 6", timeout=30_000)
    expect(edited.get_by_text("Edited")).to_be_visible()
    expect(edited.get_by_role("img", name="Reaction \N{THUMBS UP SIGN}")).to_be_visible(timeout=30_000)
    deleted = page.locator(f'.timeline [data-entry="in:{second}"]')
    expect(deleted.get_by_text("Deleted by the customer")).to_be_visible(timeout=30_000)
    edited.get_by_text("Earlier version").click()
    expect(edited.locator(".revisions")).to_contain_text("Pick-up at 5")
    assert_clean(alice, "edited-deleted-reacted")

    # A mail's HTML (sanitised by ingest) beside its text, in a sandboxed frame that can load nothing.
    sender = f"erin.{uuid.uuid4().hex[:8]}@customer.example"
    mail = (f"From: Erin Mail <{sender}>\r\nTo: {EMAIL.address}\r\nSubject: Invoice\r\n"
            'Content-Type: multipart/alternative; boundary="b1"\r\n\r\n--b1\r\n'
            "Content-Type: text/plain; charset=utf-8\r\n\r\nThe invoice is wrong.\r\n--b1\r\n"
            "Content-Type: text/html; charset=utf-8\r\n\r\n<p>The invoice is <b>wrong</b>.</p>"
            "<script>document.title='pwned'</script><img src=https://track.example/p.gif>\r\n--b1--\r\n")
    relayed = httpx.post(f"{system.url('ingest')}/webhooks/email/{EMAIL.id}", content=mail.encode(), headers={
        "Authorization": f"Bearer {EMAIL.inbound_secret}", "Content-Type": "message/rfc822"}, timeout=30)
    assert relayed.status_code == 200, relayed.text
    mail_customer = Customer(system, "Erin")
    mail_customer.phone = sender  # the inbox search finds a mail customer by address
    page.get_by_role("tab", name=re.compile(tab_of(mail_customer))).click()
    item = page.locator(".list li.item", has_text="Erin Mail")
    expect(item).to_be_visible(timeout=30_000)
    item.get_by_role("button").click()
    expect(page.locator(".timeline .inbound p.text")).to_have_text("The invoice is wrong.")
    page.get_by_text("Formatted mail").click()
    frame = page.frame_locator("iframe[title='Formatted mail (sanitised)']")
    expect(frame.locator("b")).to_have_text("wrong")
    assert page.locator("iframe[title='Formatted mail (sanitised)']").get_attribute("sandbox") == ""
    assert "script" not in (page.locator("iframe").get_attribute("srcdoc") or "")
    assert_clean(alice, "formatted-mail")
    alice.close()


def test_an_agent_writes_first_to_a_new_client_by_phone(system: System, browser: Browser) -> None:
    alice = on_duty(browser, system, AGENT)
    page = alice.page
    phone = Customer(system, "New").phone
    page.get_by_role("button", name="New conversation").click()
    dialog = page.get_by_role("dialog", name="New conversation")
    dialog.get_by_label("Phone (with country code)").fill(f"+{phone}")
    picker = dialog.get_by_role("form", name="Template")
    picker.get_by_label("Template").select_option("order_update/en_US")
    picker.get_by_label(re.compile("Variable 1")).fill("Kim")
    picker.get_by_label(re.compile("Variable 2")).fill("30 GBP")
    assert_clean(alice, "new-conversation")
    picker.get_by_role("button", name="Send template").click()
    expect(dialog).to_be_hidden()
    deadline = time.monotonic() + 30
    while not system.provider.sends_to(phone) and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    [send] = system.provider.sends_to(phone)
    assert send["template"]["name"] == "order_update"
    alice.close()


def test_writing_first_on_telegram_by_phone_reaches_a_known_customer_and_says_why_not_otherwise(
        system: System, browser: Browser) -> None:
    """Telegram lets a bot write only to someone who started it: outbound finds the contact with the phone who
    has written to the bot. Nobody with a stranger's phone has: the dialog says so. A customer who wrote to the
    bot, whose phone the agent put on the card, is reached by phone."""
    alice = on_duty(browser, system, AGENT)
    page = alice.page
    page.get_by_role("button", name="New conversation").click()
    dialog = page.get_by_role("dialog", name="New conversation")
    dialog.get_by_label("Channel").select_option(TELEGRAM.id)
    dialog.get_by_label("Phone (with country code)").fill(f"+{Customer(system, 'Stranger').phone}")
    message = dialog.get_by_role("form", name="Message")
    message.get_by_label("Message").fill("Hello from Parley")
    assert_clean(alice, "new-conversation-telegram")
    message.get_by_role("button", name="Send").click()
    expect(dialog.get_by_role("alert")).to_contain_text("customer_not_on_channel", timeout=30_000)
    expect(dialog).to_be_visible()
    refused_as_expected(alice, 422, "/v1/messages")
    dialog.get_by_role("button", name="Cancel").click()

    # A Telegram user writes to the bot; on the phone they tell their number, which alice adds to their card.
    known = TelegramCustomer(system, "Tom")
    known.writes("/start")
    opened(alice, known)
    card = page.get_by_role("complementary", name=known.name)
    card.get_by_label("Add a phone").fill(f"+{known.phone}")
    card.get_by_role("button", name="Add phone").click()
    expect(card.locator(".facts")).to_contain_text(f"+{known.phone}")
    assert_clean(alice, "contact-card-phone")
    page.get_by_role("button", name="New conversation").click()
    dialog.get_by_label("Channel").select_option(TELEGRAM.id)
    dialog.get_by_label("Phone (with country code)").fill(f"+{known.phone}")
    message.get_by_label("Message").fill("Your parcel is on its way")
    # outbound learns the card's new phone from contacts' event: until then it answers customer_not_on_channel
    deadline = time.monotonic() + 30
    while True:
        with page.expect_response(lambda r: r.url.endswith("/v1/messages") and r.request.method == "POST") as sent:
            message.get_by_role("button", name="Send").click()
        if sent.value.ok:
            break
        assert "customer_not_on_channel" in sent.value.text() and time.monotonic() < deadline, sent.value.text()
        refused_as_expected(alice, 422, "/v1/messages")
        page.wait_for_timeout(500)
    expect(dialog).to_be_hidden()
    reached = page.locator(".timeline .outbound", has_text="Your parcel is on its way")  # the open conversation
    expect(reached.locator(".ticks")).to_have_attribute("data-status", "sent", timeout=30_000)
    [(_, body)] = [(endpoint, body) for endpoint, body in system.provider.requests
                   if endpoint == "telegram:sendMessage" and str(body.get("chat_id")) == known.user_id]
    assert body["text"] == "Your parcel is on its way"
    assert_clean(alice, "telegram-by-phone")
    alice.close()


def test_decline_take_priority_and_snooze(system: System, browser: Browser) -> None:
    # the offers of earlier tests (the team's offers last 600 s) may fill alice's five: room for this one
    staff(system, AGENT, capacity=50)
    try:
        decline_take_priority_and_snooze(system, browser)
    finally:
        staff(system, AGENT, capacity=5)


def decline_take_priority_and_snooze(system: System, browser: Browser) -> None:
    alice = on_duty(browser, system, AGENT)
    page = alice.page
    customer = Customer(system, "Actions")
    customer.writes("I need a hand")
    arrived(alice, customer).get_by_role("button").click()  # offered to alice: in her Mine tab
    page.get_by_role("button", name="Decline").click()  # nobody else is online: back to the team's queue
    expect(page.locator(".timeline .activity", has_text="Offer declined")).to_be_visible()
    page.get_by_role("tab", name=re.compile("Queued")).click()
    arrived(alice, customer).get_by_role("button").click()
    # the list may have shown it a moment before the decline reached it (still alice's): Take shows once it is not
    take = page.get_by_role("toolbar", name="Conversation actions").get_by_role("button", name="Take")
    expect(take).to_be_visible()
    page.keyboard.press("t")  # take it after all
    expect(take).to_be_hidden()
    expect(page.locator("#conversation-title + p")).to_contain_text("agent alice")
    priority = page.get_by_role("combobox", name="Priority")
    priority.select_option("3")
    expect(page.locator(".timeline .activity", has_text="Priority changed")).to_be_visible()  # stored
    page.get_by_role("tab", name=re.compile("Mine")).click()
    expect(arrived(alice, customer).get_by_title("priority")).to_have_text("P3")
    # the assignee filter of All assigned: bob's conversations do not hold it, alice's do
    page.get_by_role("tab", name=re.compile("All assigned")).click()
    arrived(alice, customer)
    page.get_by_role("button", name="Filters").click()
    assignee = page.get_by_role("group", name="Filters").get_by_label("Assignee")
    with page.expect_response(lambda r: f"assignee={OTHER_AGENT}" in r.url):  # the filtered list, not a stale one
        assignee.select_option(OTHER_AGENT)
    expect(conversation_item(alice, customer)).to_be_hidden()
    assignee.select_option(AGENT)
    expect(conversation_item(alice, customer)).to_be_visible()
    page.get_by_role("group", name="Filters").get_by_role("button", name="Clear").click()
    page.get_by_role("button", name="Snooze").click()
    dialog = page.get_by_role("dialog", name="Snooze the conversation")
    dialog.get_by_label("For").select_option(label="Tomorrow")
    assert_clean(alice, "snooze-dialog")
    dialog.get_by_role("button", name="Snooze").click()
    page.get_by_role("tab", name=re.compile("Snoozed")).click()
    expect(arrived(alice, customer)).to_contain_text("snoozed")
    assert_clean(alice, "snoozed")
    alice.close()


def test_the_supervisor_sees_the_queue_and_the_agents(system: System, browser: Browser) -> None:
    waiting = Customer(system, "Queue")
    waiting.writes("Anyone there?")  # the queue or an online agent holds it
    sam = signed_in(browser, system, SUPERVISOR, "manager")
    sam.page.get_by_role("button", name="Supervisor").click()
    expect(sam.page.get_by_role("heading", name="Supervisor")).to_be_visible()
    agents = sam.page.get_by_role("table", name="Agents")
    expect(agents.get_by_role("rowheader", name=AGENT)).to_be_visible()
    expect(agents.get_by_role("row", name=re.compile(AGENT)).locator(".load")).to_have_text(re.compile(r"\d+/\d+"))
    # The period's figures from the router: today's total counts the conversation just opened, by team too.
    figures = sam.page.get_by_role("table", name="Figures of the period")
    expect(figures.get_by_role("row", name=re.compile(r"^All [1-9]"))).to_be_visible()
    expect(figures.get_by_role("rowheader", name=re.compile(r"^Team "))).not_to_have_count(0)
    assert_clean(sam, "supervisor")
    with sam.page.expect_request(re.compile(r"/v1/supervisor/period\?since=")) as asked:
        sam.page.get_by_role("combobox", name="Period", exact=True).select_option(label="Last 7 days")
    since = datetime.fromisoformat(parse_qs(urlparse(asked.value.url).query)["since"][0])
    assert timedelta(days=6, hours=23) < datetime.now(UTC) - since < timedelta(days=7, minutes=5)
    expect(figures.get_by_role("row", name=re.compile(r"^All [1-9]"))).to_be_visible()
    assert_clean(sam, "supervisor-week")
    # Any days up to the router's 31: the first day's midnight to the end of the last day.
    sam.page.get_by_role("combobox", name="Period", exact=True).select_option(label="Dates…")
    sam.page.get_by_label("From").fill("2026-01-01")
    with sam.page.expect_request(re.compile(r"/v1/supervisor/period\?since=")) as asked:
        sam.page.get_by_label("To (included)").fill("2026-01-10")
    query = parse_qs(urlparse(asked.value.url).query)
    since, until = (datetime.fromisoformat(query[key][0]) for key in ("since", "until"))
    assert until - since == timedelta(days=10)
    sam.page.get_by_label("From").fill("2025-11-01")
    expect(sam.page.get_by_role("alert")).to_have_text("At most 31 days.")
    sam.page.get_by_role("combobox", name="Period", exact=True).select_option(label="Today")

    # Back in the inbox: the managers' export, and a bulk action on a selection.
    sam.page.get_by_role("button", name="Inbox").click()
    sam.page.get_by_role("tab", name=re.compile(tab_of(waiting))).click()
    with sam.page.expect_download() as exported:
        sam.page.get_by_role("button", name="Export CSV").click()
    assert Path(exported.value.path()).read_text().startswith("id,status")
    item = arrived(sam, waiting)
    item.get_by_role("checkbox").check()
    toolbar = sam.page.get_by_role("toolbar", name="Selected conversations")
    expect(toolbar).to_contain_text("1 selected")
    toolbar.get_by_role("button", name="Archive").click()
    expect(item).to_be_hidden()
    sam.page.get_by_role("tab", name=re.compile("Archived")).click()
    expect(arrived(sam, waiting)).to_be_visible()
    sam.close()


def test_the_inbox_works_on_a_phone(system: System, browser: Browser) -> None:
    alice = on_duty(browser, system, AGENT, viewport=PHONE)
    page = alice.page
    customer = Customer(system, "Mobile")
    customer.writes("Writing from my phone")
    page.get_by_role("tab", name=re.compile(tab_of(customer))).click()  # queued once alice is at capacity
    item = arrived(alice, customer)
    assert_clean(alice, "phone-inbox")
    item.get_by_role("button").click()
    expect(page.locator("#conversation-title")).to_have_text(customer.name)
    expect(page.get_by_role("region", name="Conversations")).to_be_hidden()
    assert_clean(alice, "phone-conversation")
    # the card folds away on a phone: "Customer card" opens it over the conversation, and back
    page.get_by_role("button", name="Customer card").click()
    card = page.get_by_role("complementary", name=customer.name)
    expect(card.locator(".facts")).to_contain_text(f"+{customer.phone}")
    assert_clean(alice, "phone-contact-card")
    card.get_by_role("button", name="Back to the conversation").click()
    expect(card).to_be_hidden()
    page.get_by_role("button", name="Back to the list").click()
    expect(item).to_be_visible()
    alice.close()

    sam = signed_in(browser, system, SUPERVISOR, "manager", viewport=PHONE)  # the supervisor's view on a phone too
    sam.page.keyboard.press("g")
    expect(sam.page.get_by_role("heading", name="Supervisor")).to_be_visible()
    expect(sam.page.get_by_role("table", name="Agents").get_by_role("rowheader", name=AGENT)).to_be_visible()
    assert_clean(sam, "phone-supervisor")
    sam.close()


# Counts the tones the page starts (WebAudio oscillators), without keeping the page from playing them.
TONE_RECORDER = """
window.__tonesPlayed = 0;
const RealAudioContext = window.AudioContext;
window.AudioContext = class extends RealAudioContext {
  createOscillator() {
    const oscillator = super.createOscillator();
    const start = oscillator.start.bind(oscillator);
    oscillator.start = (...args) => { window.__tonesPlayed += 1; return start(...args); };
    return oscillator;
  }
};
"""


def test_an_offer_chimes_and_a_dropped_file_an_emoji_and_a_transfer_go_with_the_reply(
        system: System, browser: Browser) -> None:
    browser.context.add_init_script(TONE_RECORDER)
    # a new agent with room for the whole queue: whatever waits is offered to her, each offer with its tone
    staff(system, NEW_AGENT, capacity=100)
    carol = on_duty(browser, system, NEW_AGENT)
    page = carol.page
    page.get_by_label("My presence").click()  # a click: the browser lets the page play sound
    customer = Customer(system, "Chime")
    customer.writes("Is anyone there?")
    page.wait_for_function("window.__tonesPlayed > 0", timeout=30_000)  # an offer came: its tone played
    expect(page.locator(".my-load")).to_contain_text(re.compile(r"whatsapp \d+/100"))  # her load / capacity
    opened(carol, customer)

    # A file dropped on the composer is attached; an emoji comes from the picker's search.
    drop = page.evaluate_handle("""bytes => {
        const data = new DataTransfer();
        data.items.add(new File([new Uint8Array(bytes)], "dropped.png", {type: "image/png"}));
        return data;
    }""", list(png_bytes(20, 20)))
    composer = page.get_by_role("region", name="Composer")
    composer.dispatch_event("dragover", {"dataTransfer": drop})
    composer.dispatch_event("drop", {"dataTransfer": drop})
    expect(composer.locator(".file")).to_contain_text("Attached: dropped.png")
    page.get_by_label("Reply to the customer").fill("Here is your label ")
    composer.get_by_text("Emoji", exact=True).click()
    picker = page.locator("emoji-picker")
    picker.get_by_role("combobox", name="Search").fill("thumbs up")
    found = picker.get_by_role("option", name=re.compile("thumbs up")).first
    expect(found).to_be_visible()
    assert_clean(carol, "emoji-picker")  # the open picker is scanned too
    found.click()
    expect(page.get_by_label("Reply to the customer")).to_have_value(re.compile("^Here is your label 👍"))
    expect(picker).to_be_hidden()  # picked: the picker closes

    # After the send, the conversation goes to the team with a comment.
    page.get_by_label("After send").select_option("transfer")
    composer.get_by_label("Transfer to").select_option("team:support")
    composer.get_by_label("Transfer comment").fill("Billing handles label refunds")
    assert_clean(carol, "after-send-transfer")
    composer.get_by_role("button", name="Send", exact=True).click()
    sent = page.locator(".timeline .outbound", has=page.locator(".attachment"))
    expect(sent).to_contain_text("Here is your label 👍", timeout=30_000)  # with the emoji's variation selector
    expect(page.locator(".timeline .activity", has_text="Billing handles label refunds")).to_be_visible(
        timeout=30_000)
    assert system.provider.sends_to(customer.phone)[-1]["image"]["caption"].startswith("Here is your label 👍")
    assert_clean(carol, "after-send-transferred")
    page.get_by_label("My presence").select_option("away")
    expect(page.locator(".dot-away")).to_be_visible()
    goes_offline(carol)  # her offers go back to the queue
    carol.close()


def test_mark_close_reopen_block_and_the_filters(system: System, browser: Browser) -> None:
    customer = Customer(system, "Flags")
    customer.writes("Please call me back")
    sam = signed_in(browser, system, SUPERVISOR, "manager")
    page = opened(sam, customer)
    item = conversation_item(sam, customer)
    expect(item.get_by_title("waiting for an answer")).to_be_visible()

    page.get_by_role("button", name="Mark answered").click()
    expect(page.get_by_role("button", name="Mark unanswered")).to_be_visible()
    expect(item.get_by_title("waiting for an answer")).to_be_hidden()
    page.get_by_role("button", name="Mark unanswered").click()
    expect(item.get_by_title("waiting for an answer")).to_be_visible()

    page.get_by_role("button", name="Close", exact=True).click()
    page.get_by_role("dialog", name="Close the conversation").get_by_role("button", name="Close").click()
    page.get_by_role("button", name="Reopen").click()
    expect(page.locator(".timeline .activity", has_text="Reopened")).to_be_visible()
    expect(page.get_by_role("button", name="Close", exact=True)).to_be_visible()

    # Blocked on the channel from the card, then unblocked (a manager's right).
    card = page.get_by_role("complementary", name=customer.name)
    card.get_by_role("button", name="Block").click()
    expect(card.locator(".tag.danger", has_text="blocked")).to_be_visible(timeout=30_000)
    assert_clean(sam, "blocked")
    card.get_by_role("button", name="Unblock").click()
    expect(card.locator(".tag.danger")).to_have_count(0, timeout=30_000)

    # The filters narrow the list: by channel id, by brand (none configured: nothing matches), unanswered.
    page.get_by_role("tab", name=re.compile(tab_of(customer))).click()
    page.get_by_role("button", name="Filters").click()
    filters = page.get_by_role("group", name="Filters")
    filters.get_by_label("Channel id").fill("no-such-channel")
    expect(page.locator("#conversation-list")).to_contain_text("Nothing here.")
    filters.get_by_label("Channel id").fill(WHATSAPP.id)
    expect(item).to_be_visible()
    filters.get_by_role("combobox", name=re.compile(r"^Channel(?! id)")).select_option("whatsapp")
    filters.get_by_label("Team").select_option("support")
    expect(item).to_be_visible()
    filters.get_by_label("Label").fill("no-such-label")
    expect(page.locator("#conversation-list")).to_contain_text("Nothing here.")
    filters.get_by_label("Label").fill("")
    expect(item).to_be_visible()
    filters.get_by_label("Unanswered only").check()
    expect(item).to_be_visible()
    filters.get_by_label("Brand").fill("no-such-brand")
    expect(page.locator("#conversation-list")).to_contain_text("Nothing here.")
    assert_clean(sam, "filters-applied")
    filters.get_by_role("button", name="Clear").click()
    expect(item).to_be_visible()
    sam.close()


def test_load_more_pages_past_the_first_fifty(system: System, browser: Browser) -> None:
    crowd = [Customer(system, "Crowd") for _ in range(55)]
    for customer in crowd:
        customer.writes("Queued with many")
    # all stored before the list is read: none arrives later among them (they wrote within the same seconds),
    # which would move the selection of j and k below
    statuses = [customer.conversation_status(SUPERVISOR, "manager") for customer in crowd]
    sam = signed_in(browser, system, SUPERVISOR, "manager")
    page = sam.page
    page.get_by_role("tab", name=re.compile("Queued")).click()
    expect(page.get_by_role("tab", name=re.compile("Queued")).locator(".count")).to_have_text(
        re.compile(r"^(5[1-9]|[6-9]\d|\d{3,})$"), timeout=60_000)  # the pushed count: more than a page
    items = page.locator(".list li.item")
    expect(items).to_have_count(50, timeout=30_000)
    page.get_by_role("button", name="Load more").click()
    expect(items).not_to_have_count(50)
    assert items.count() > 50
    # a live change reloads the list: the page Load more added stays. The request is awaited, not the response: a
    # reload asked before Load more answered may answer now (the console drops it), and it asked for one page.
    with page.expect_request(lambda r: "/v1/conversations?" in r.url and "cursor=" not in r.url) as reloaded:
        crowd[0].writes("Still here")
    assert "limit=100" in reloaded.value.url
    page.wait_for_timeout(500)  # the answer is rendered
    assert items.count() > 50

    # keyboard: j / k move through the list, / searches, e archives the open one, g goes to the supervisor and back
    title = page.locator("#conversation-title")
    page.keyboard.press("j")
    first = title.inner_text()
    page.keyboard.press("j")
    expect(title).not_to_have_text(first)
    page.keyboard.press("k")
    expect(title).to_have_text(first)
    page.keyboard.press("/")
    expect(page.get_by_label("Search by phone, name or user id")).to_be_focused()
    # one the Queued tab holds (those offered to an agent still online from an earlier test are in All assigned)
    queued = next(customer for customer, status in zip(crowd, statuses, strict=True) if status == "queued")
    page.keyboard.type(queued.phone)
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text(queued.name)
    items.first.get_by_role("button").click()
    expect(title).to_have_text(queued.name)
    page.keyboard.press("e")
    expect(page.locator(".timeline .activity", has_text="Archived")).to_be_visible()
    page.keyboard.press("g")
    expect(page.get_by_role("heading", name="Supervisor")).to_be_visible()
    page.keyboard.press("g")
    expect(page.get_by_label("Search by phone, name or user id")).to_be_visible()
    sam.close()


# `j` pressed on the page the moment a live reload re-renders the list: in the task of React's commit, before the
# effects of that render run (a MutationObserver's callback comes right after the DOM changed). An agent's key
# lands there whenever a reload's render is committed just before it, which is often on a busy inbox.
J_AS_THE_LIST_RERENDERS = """() => {
  window.pressedAsTheListRerendered = false;
  const observer = new MutationObserver(() => {
    observer.disconnect();
    document.body.dispatchEvent(new KeyboardEvent("keydown", {key: "j", bubbles: true, cancelable: true}));
    window.pressedAsTheListRerendered = true;
  });
  observer.observe(document.querySelector("#conversation-list ul"), {childList: true});
}"""


def closed(system: System, *customers: Customer) -> None:
    """Each customer's conversation closed by a manager through the console, in this order: the Closed tab holds
    them, newest closed first, whoever was holding them."""
    with httpx.Client(base_url=system.url(CONSOLE), headers=system.auth(SUPERVISOR, "manager"), timeout=30) as api:
        for customer in customers:
            customer.conversation_status(SUPERVISOR, "manager")  # stored
            [found] = api.get("/v1/conversations", params={"q": customer.search, "limit": 1}).json()["items"]
            closing = api.post(f"/v1/conversations/{found['id']}/close", json={})
            assert closing.status_code == 200, closing.text


def closed_and_listed(system: System, browser: Browser, marker: str, *customers: Customer) -> Screen:
    """The customers' conversations closed, and listed on a supervisor's Closed tab searched for `marker` (in
    every name): the last one closed first."""
    closed(system, *customers)
    sam = signed_in(browser, system, SUPERVISOR, "manager")
    page = sam.page
    page.get_by_role("tab", name=re.compile("Closed")).click()
    page.get_by_label("Search by phone, name or user id").fill(marker)
    items = page.locator(".list li.item")
    expect(items).to_have_count(len(customers))
    for item, customer in zip(items.all(), reversed(customers), strict=True):
        expect(item).to_contain_text(customer.name)
    return sam


def test_a_key_pressed_as_a_live_reload_rerenders_the_list_is_kept(system: System, browser: Browser) -> None:
    marker = f"Keys{uuid.uuid4().hex[:6]}"
    older, newer, third = (Customer(system, f"{marker} {which}") for which in ("older", "newer", "third"))
    for customer, text in ((older, "Older one"), (newer, "Newer one"), (third, "Third one")):
        customer.writes(text)
    sam = closed_and_listed(system, browser, marker, older, newer)
    page = sam.page
    title = page.locator("#conversation-title")
    page.locator(".list li.item", has_text=newer.name).get_by_role("button").click()
    expect(title).to_have_text(newer.name)

    # a third one closed: the reload puts it at the top, and j is pressed as that list renders. The selection
    # moves on from what was open, and stays there (the reload's own refresh of the open conversation used to
    # open again the one open when the list rendered)
    page.evaluate(J_AS_THE_LIST_RERENDERS)
    closed(system, third)
    page.wait_for_function("window.pressedAsTheListRerendered === true")
    expect(page.locator(".timeline .inbound", has_text="Older one")).to_be_visible()
    expect(title).to_have_text(older.name)
    sam.close()


# Records whether the list ever lost a conversation it showed (named by `name`).
WATCH_THE_LIST = """name => {
  window.listLost = false;
  new MutationObserver(() => {
    const shown = [...document.querySelectorAll(".list li.item")].some(item => item.textContent.includes(name));
    if (!shown) window.listLost = true;
  }).observe(document.querySelector("#conversation-list ul"), {childList: true, subtree: true});
}"""


def test_a_slow_list_answer_does_not_undo_a_newer_one(system: System, browser: Browser) -> None:
    marker = f"Late{uuid.uuid4().hex[:6]}"
    first, second, third = (Customer(system, f"{marker} {which}") for which in ("first", "second", "third"))
    for customer in (first, second, third):
        customer.writes("Hello")
    sam = closed_and_listed(system, browser, marker, first)
    page = sam.page

    # the next reload is read at once but answered late: after the one that shows the second customer
    held: list[tuple[Route, Any]] = []

    def hold_the_first(route: Route) -> None:
        if held:
            route.continue_()
        else:
            held.append((route, route.fetch()))

    lists = re.compile(r"/v1/conversations\?")
    page.route(lists, hold_the_first)
    closed(system, third)
    deadline = time.monotonic() + 30
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert held, "the list was not reloaded after a conversation closed"
    closed(system, second)
    expect(conversation_item(sam, second)).to_be_visible(timeout=30_000)
    page.evaluate(WATCH_THE_LIST, second.name)

    [(late, answer)] = held
    with page.expect_response(lambda response: response.request == late.request):
        late.fulfill(response=answer)
    page.unroute(lists)
    page.wait_for_timeout(500)  # the answer is read and rendered
    assert page.evaluate("window.listLost") is False, "a reload asked earlier put back the list without it"
    expect(conversation_item(sam, second)).to_be_visible()
    sam.close()
