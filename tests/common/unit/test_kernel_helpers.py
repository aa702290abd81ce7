import json
import logging
import sys
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley_common.auth import Role, decode_token, issue_token, key_id
from parley_common.clock import FixedClock, SystemClock
from parley_common.errors import ApiError
from parley_common.logging import configure_logging, redact
from parley_common.phones import InvalidPhoneNumber, mask, to_e164

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
SECRET = "a-test-secret-of-at-least-32-bytes!"


@pytest.mark.parametrize(("raw", "e164"), [
    ("+7 (912) 345-67-89", "+79123456789"),
    ("79123456789", "+79123456789"),
    ("0079123456789", "+79123456789"),
    ("16505551234", "+16505551234"),
    ("+44 20 7946 0958", "+442079460958"),
    ("+٧٩١٢٣٤٥٦٧٨٩", "+79123456789"),
])
def test_phones_normalise_to_e164(raw: str, e164: str) -> None:
    assert to_e164(raw) == e164


@pytest.mark.parametrize("raw", ["123456", "+0 000 000 0000", "abc", ""])
def test_impossible_or_short_numbers_are_refused(raw: str) -> None:
    with pytest.raises(InvalidPhoneNumber):
        to_e164(raw)


@given(st.from_regex(r"\+?[1-9]\d{6,14}", fullmatch=True))
def test_normalising_is_idempotent(raw: str) -> None:
    try:
        once = to_e164(raw)
    except InvalidPhoneNumber:
        return
    assert to_e164(once) == once


def test_masked_phones_keep_only_country_code_and_last_digits() -> None:
    assert mask("+79123456789") == "+79*******89"


def test_tokens_round_trip_and_expire() -> None:
    token = issue_token(SECRET, "acme", "alice", ["agent"], ttl=timedelta(minutes=5))
    principal = decode_token(SECRET, token)
    assert (principal.tenant_id, principal.login, principal.roles) == ("acme", "alice", frozenset({Role.AGENT}))
    with pytest.raises(ApiError) as wrong_secret:
        decode_token("another-secret-of-at-least-32-bytes", token)
    assert wrong_secret.value.code == "invalid_token"
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    expired = issue_token(SECRET, "acme", "alice", ["agent"], ttl=timedelta(seconds=1), now=an_hour_ago)
    with pytest.raises(ApiError) as too_old:
        decode_token(SECRET, expired)
    assert too_old.value.code == "token_expired"


def test_unknown_roles_are_refused() -> None:
    with pytest.raises(ApiError):
        decode_token(SECRET, issue_token(SECRET, "acme", "mallory", ["god"]))


def test_clocks() -> None:
    clock = FixedClock(NOW)
    clock.advance(timedelta(seconds=5))
    assert clock.now() == NOW + timedelta(seconds=5)
    assert SystemClock().now().tzinfo is not None
    with pytest.raises(ValueError, match="timezone"):
        FixedClock(datetime(2026, 1, 1))


def test_logs_never_carry_bodies_secrets_or_full_phones() -> None:
    event = redact(None, "info", {"event": "sent", "text": "my card is 4111", "access_token": "EAAG",
                                  "customer_phone": "+79123456789", "channel_id": "wa"})
    assert event == {"event": "sent", "text": "[redacted]", "access_token": "[redacted]",
                     "customer_phone": "+79*******89", "channel_id": "wa"}


def test_json_logs_carry_the_bound_correlation_id(capsys: pytest.CaptureFixture[str]) -> None:
    import structlog
    from structlog.contextvars import bind_contextvars, clear_contextvars

    clear_contextvars()
    configure_logging("test", json=True)
    try:
        bind_contextvars(correlation_id="corr-42")
        structlog.get_logger().info("hello", body="secret words")
        line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    finally:
        # configure_logging bound pytest's captured stderr, which closes after this test.
        clear_contextvars()
        structlog.reset_defaults()
        logging.basicConfig(stream=sys.__stderr__, force=True)
    assert line["correlation_id"] == "corr-42"
    assert line["service"] == "test"
    assert line["body"] == "[redacted]"


def test_tokens_name_their_key_and_verify_under_the_current_or_a_previous_key() -> None:
    old, new = "old-token-key-of-at-least-32-characters", "new-token-key-of-at-least-32-characters"
    by_old, by_new = (issue_token(key, "acme", "alice", ["agent"]) for key in (old, new))
    assert jwt.get_unverified_header(by_new)["kid"] == key_id(new) != key_id(old)
    assert new not in key_id(new) and len(key_id(new)) == 16  # a fingerprint, not the key
    for token in (by_old, by_new):
        assert decode_token(new, token, previous=[old]).login == "alice"
    with pytest.raises(ApiError) as retired:
        decode_token(new, by_old)
    assert retired.value.code == "invalid_token"


def test_a_token_without_kid_is_tried_under_every_accepted_key_and_a_forged_kid_gains_nothing() -> None:
    old, new = "old-token-key-of-at-least-32-characters", "new-token-key-of-at-least-32-characters"
    claims = {"tenant": "acme", "sub": "bob", "roles": [], "exp": datetime.now(UTC) + timedelta(minutes=5)}
    legacy = jwt.encode(claims, old, algorithm="HS256")  # issued before tokens carried a kid
    assert decode_token(new, legacy, previous=[old]).login == "bob"
    lying = jwt.encode(claims, "an-attackers-key-of-at-least-32-chars", algorithm="HS256",
                       headers={"kid": key_id(new)})
    for token in (lying, jwt.encode(claims, old, algorithm="HS256", headers={"kid": key_id(old)}), "not.a.jwt"):
        with pytest.raises(ApiError) as refused:
            decode_token(new, token)
        assert refused.value.code == "invalid_token"
