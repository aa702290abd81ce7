"""Pure checks: edna email rules, phone to write first, one attachment, placeholders, status machine,
provider error classification, attachment table, window view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley_common.channel_catalogue import MB, attachment_rule
from parley_common.events.common import ChannelType, SenderKind
from parley_common.events.inbound import DeliveryStatus
from parley_outbound.domain.provider_errors import (
    backoff_seconds,
    classify_meta,
    classify_telegram,
    classify_viber,
)
from parley_outbound.domain.status import State, advance, from_provider
from parley_outbound.domain.validation import (
    InvalidRequest,
    check_email_addresses,
    check_single_attachment,
    is_valid_email,
    phone_digits_to_write_first,
    placeholders,
    render_placeholders,
)
from parley_outbound.domain.window import MessageKind, WindowFacts
from parley_outbound.domain.window_view import window_view

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("address", [
    "dana@example.com", "d.a_n-a@mail.example.co", "x1@a-b.io", "UPPER@Example.ORG", "a@b.c.de",
])
def test_valid_email_addresses(address: str) -> None:
    assert is_valid_email(address)


@pytest.mark.parametrize("address", [
    "dana@example.c", "dana@example", "dana@exa_mple.com", "da+na@example.com", "dana@example.c0m",
    "@example.com", "dana@@example.com", "dana@a.b.c.com", "дана@example.com", "dana@example.com ",
    "dana@.com",
])
def test_invalid_email_addresses(address: str) -> None:
    assert not is_valid_email(address)


def test_email_check_names_the_field_and_address() -> None:
    with pytest.raises(InvalidRequest) as raised:
        check_email_addresses("bcc", ["ok@example.com", "bad@x"])
    assert raised.value.code == "invalid_email_address" and raised.value.field == "bcc"
    assert "bad@x" in raised.value.message


@pytest.mark.parametrize(("raw", "digits"), [("+7 (912) 345-67-89", "79123456789"), ("1234567", "1234567")])
def test_phone_to_write_first(raw: str, digits: str) -> None:
    assert phone_digits_to_write_first(raw) == digits


@pytest.mark.parametrize("raw", ["123456", "+1 23-45", "call me 1234567", ""])
def test_phone_to_write_first_needs_seven_digits(raw: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        phone_digits_to_write_first(raw)
    assert raised.value.code == "invalid_phone_number"


def test_one_attachment_per_message() -> None:
    assert check_single_attachment([None, "m1"]) == "m1"
    assert check_single_attachment([None, None]) is None
    with pytest.raises(InvalidRequest, match="at most one"):
        check_single_attachment(["m1", "m2"])


def test_saved_reply_renders_custom_fields() -> None:
    rendered = render_placeholders("Dear {{ name }}, you are {{membership}}. {{unknown}}!",
                                   {"membership": "diamond", "name": "Dana"})
    assert rendered.text == "Dear Dana, you are diamond. !"
    assert rendered.missing == ("unknown",)
    assert placeholders("{{a}} {{b}} {{a}}") == ("a", "b")


@given(st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True), st.text(max_size=10), max_size=5))
def test_rendering_every_known_field_leaves_no_placeholder(values: dict[str, str]) -> None:
    text = " ".join("{{" + name + "}}" for name in values)
    rendered = render_placeholders(text, values)
    assert rendered.missing == ()
    assert rendered.text == " ".join(values.values())


# --- status --------------------------------------------------------------------------------------------

def test_status_moves_forward_only() -> None:
    assert advance(State.QUEUED, State.SENT) is State.SENT
    assert advance(State.SENT, State.READ) is State.READ  # read implies delivered; delivered may be skipped
    assert advance(State.READ, State.DELIVERED) is None
    assert advance(State.DELIVERED, State.DELIVERED) is None
    assert advance(State.SENDING, State.FAILED) is State.FAILED
    assert advance(State.DELIVERED, State.FAILED) is None
    assert advance(State.FAILED, State.READ) is None
    assert advance(State.REFUSED, State.SENT) is None


states = st.sampled_from([State.QUEUED, State.SENDING, State.SENT, State.DELIVERED, State.READ, State.FAILED])


@given(st.lists(states, max_size=12))
def test_any_order_of_callbacks_ends_at_the_furthest_state(reports: list[State]) -> None:
    current = State.QUEUED
    for reported in reports:
        current = advance(current, reported) or current
    order = [State.QUEUED, State.SENDING, State.SENT, State.DELIVERED, State.READ]
    if current is not State.FAILED:
        assert all(order.index(r) <= order.index(current) for r in reports if r is not State.FAILED)


def test_provider_statuses_map_to_states() -> None:
    assert from_provider(DeliveryStatus.PLAYED) is State.READ
    assert from_provider(DeliveryStatus.DELETED) is None


# --- provider errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "retry", "reason"), [
    ("131047", False, "re_engagement_required"), ("131026", False, "undeliverable"),
    ("130429", True, "rate_limited"), ("131056", True, "pair_rate_limited"), ("999999", True, "provider_unavailable"),
])
def test_whatsapp_error_codes(code: str, retry: bool, reason: str) -> None:
    outcome = classify_meta(ChannelType.WHATSAPP, code, 500 if code == "999999" else 400)
    assert (outcome.retry, outcome.reason) == (retry, reason)


def test_messenger_telegram_viber_errors() -> None:
    assert classify_meta(ChannelType.MESSENGER, "613", 400).retry
    assert classify_meta(ChannelType.INSTAGRAM, "551", 400).reason == "recipient_unavailable"
    assert classify_meta(ChannelType.MESSENGER, "12345", 400).retry is False
    blocked = classify_telegram(403, "Forbidden: bot was blocked by the user", None)
    assert (blocked.retry, blocked.reason) == (False, "user_blocked_business")
    flood = classify_telegram(429, "Too Many Requests: retry after 17", 17)
    assert (flood.retry, flood.retry_after_seconds) == (True, 17)
    assert classify_telegram(502, "Bad Gateway", None).retry
    assert classify_viber(6).reason == "not_subscribed" and not classify_viber(6).retry
    assert classify_viber(5).reason == "not_on_messenger"
    assert classify_viber(12).retry


@given(st.integers(0, 20), st.floats(0, 1))
def test_backoff_is_bounded_and_grows(attempt: int, jitter: float) -> None:
    delay = backoff_seconds(attempt, 0.1, 5.0, jitter)
    assert 0.05 * min(2 ** attempt, 50) - 1e-9 <= delay <= 5.0


# --- attachments ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("channel", "mime", "size", "kind"), [
    (ChannelType.WHATSAPP, "image/jpeg", 5 * MB, "image"),
    (ChannelType.WHATSAPP, "image/jpeg", 5 * MB + 1, None),
    (ChannelType.WHATSAPP, "video/mp4", 16 * MB, "video"),
    (ChannelType.WHATSAPP, "image/gif", 1000, None),
    (ChannelType.WHATSAPP, "application/pdf", 100 * MB, "document"),
    (ChannelType.WHATSAPP, "image/webp", 100_000, "sticker"),
    (ChannelType.TELEGRAM, "application/zip", 1000, "document"),
    (ChannelType.EMAIL, "application/zip", 26 * MB, None),
])
def test_attachment_rules(channel: ChannelType, mime: str, size: int, kind: str | None) -> None:
    rule = attachment_rule(channel, mime, size)
    assert (rule.kind if rule else None) == kind


# --- window view ---------------------------------------------------------------------------------------

def test_window_view_reports_remaining_time_and_allowed_kinds() -> None:
    view = window_view(ChannelType.WHATSAPP, WindowFacts(last_customer_at=NOW - timedelta(hours=20)), NOW)
    assert view.open and view.remaining == timedelta(hours=4)
    assert view.closes_at == NOW + timedelta(hours=4)
    assert {(a.message_kind, a.verdict) for a in view.allowed} == {(MessageKind.FREE_FORM, "allowed"),
                                                                   (MessageKind.TEMPLATE, "allowed")}
    closed = window_view(ChannelType.MESSENGER, WindowFacts(last_customer_at=NOW - timedelta(days=2)), NOW)
    assert not closed.open and closed.remaining == timedelta(0)
    human = [a for a in closed.allowed if a.sender_kind is SenderKind.HUMAN and a.message_kind is MessageKind.FREE_FORM]
    assert human[0].tag == "HUMAN_AGENT"
    assert closed.human_agent_closes_at == NOW + timedelta(days=5)
    telegram = window_view(ChannelType.TELEGRAM, WindowFacts(last_customer_at=NOW), NOW)
    assert telegram.open and not telegram.has_window and telegram.closes_at is None


def test_attachment_checks_name_what_is_wrong() -> None:
    from parley_outbound.domain.attachments import MediaFacts, check_attachment

    def code(facts: MediaFacts | None) -> str:
        with pytest.raises(InvalidRequest) as raised:
            check_attachment(ChannelType.WHATSAPP, facts, NOW)
        return raised.value.code

    later = NOW + timedelta(days=1)
    assert check_attachment(ChannelType.WHATSAPP, MediaFacts("video/mp4", MB, later), NOW).kind == "video"
    assert code(None) == "media_not_found"
    assert code(MediaFacts("video/mp4", MB, NOW)) == "media_expired"
    assert code(MediaFacts("video/mp4", MB, later, expired=True)) == "media_expired"
    assert code(MediaFacts("video/mp4", 17 * MB, later)) == "attachment_not_accepted"


@pytest.mark.parametrize(("channel", "sender", "login", "thread", "held"), [
    (ChannelType.WHATSAPP, SenderKind.HUMAN, "lee", ("assigned", "agent", "dana"), True),
    (ChannelType.WHATSAPP, SenderKind.HUMAN, "dana", ("assigned", "agent", "dana"), False),
    (ChannelType.EMAIL, SenderKind.HUMAN, "lee", ("assigned", "agent", "dana"), False),
    (ChannelType.TELEGRAM, SenderKind.BOT, None, ("assigned", "agent", "dana"), False),
    (ChannelType.TELEGRAM, SenderKind.HUMAN, "lee", ("closed", "agent", "dana"), False),
    (ChannelType.TELEGRAM, SenderKind.HUMAN, "lee", ("assigned", "team", "support"), False),
    (ChannelType.VIBER, SenderKind.HUMAN, "lee", (None, None, None), False),
])
def test_active_thread_of_another_agent(channel: ChannelType, sender: SenderKind, login: str | None,
                                        thread: tuple[str | None, str | None, str | None], held: bool) -> None:
    from parley_outbound.domain.threads import ThreadFacts, held_by_another_agent
    assert held_by_another_agent(channel, sender, login, ThreadFacts(*thread)) is held


def test_viber_sends_a_video_as_a_video_with_its_size() -> None:
    from parley_common.channels import ViberChannel
    from parley_outbound.adapters.media_fetch import MediaInfo
    from parley_outbound.adapters.providers.viber import viber_body
    from parley_outbound.domain.outgoing import Outgoing

    channel = ViberChannel(id="vb", tenant_id="t", auth_token="x", sender_name="Acme")  # type: ignore[arg-type]
    info = MediaInfo("m1", "video/mp4", "clip.mp4", 3 * MB, "https://media.example/clip.mp4")
    body = viber_body(channel, Outgoing("msg-1", "viber-user", text="look", media_kind="video"), info)
    assert (body["type"], body["size"], body["media"], body["text"]) == ("video", 3 * MB, info.download_url, "look")
