import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley_common.channels import ChannelConfigError, ChannelNotOfTenant, Channels, TelegramChannel, WhatsAppChannel
from parley_common.errors import ApiError

WHATSAPP = {
    "id": "wa-main", "type": "whatsapp", "tenant_id": "acme", "phone_number_id": "1001",
    "access_token": "EAAG-token", "app_secret": "app-secret", "verify_token": "verify",
}
TELEGRAM = {"id": "tg", "type": "telegram", "tenant_id": "acme", "bot_token": "1:abc", "webhook_secret": "s"}


def test_loads_each_channel_as_its_type_with_secrets_hidden(tmp_path: Path) -> None:
    path = tmp_path / "channels.yaml"
    path.write_text(
        "channels:\n"
        "  - {id: wa-main, type: whatsapp, tenant_id: acme, phone_number_id: '1001', access_token: EAAG-token,\n"
        "     app_secret: app-secret, verify_token: verify}\n"
        "  - {id: tg, type: telegram, tenant_id: acme, bot_token: '1:abc', webhook_secret: s}\n"
    )
    channels = Channels.load(path)
    whatsapp = channels.get("wa-main")
    assert isinstance(whatsapp, WhatsAppChannel)
    assert whatsapp.access_token.get_secret_value() == "EAAG-token"
    assert "EAAG-token" not in repr(whatsapp)
    assert isinstance(channels.get("tg"), TelegramChannel)
    assert channels.get("missing") is None
    assert len(channels) == 2


def test_json_files_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "channels.json"
    path.write_text('{"channels": [{"id": "tg", "type": "telegram", "tenant_id": "acme", '
                    '"bot_token": "1:abc", "webhook_secret": "s"}]}')
    assert [channel.id for channel in Channels.load(path)] == ["tg"]


def test_a_missing_field_is_named_with_the_channel_id() -> None:
    broken = {**WHATSAPP}
    del broken["app_secret"]
    with pytest.raises(ChannelConfigError) as error:
        Channels.parse({"channels": [TELEGRAM, broken]}, "channels.yaml")
    assert str(error.value) == "channels.yaml: channels[wa-main].app_secret: Field required"


def test_unknown_type_and_duplicate_ids_are_refused() -> None:
    with pytest.raises(ChannelConfigError, match=r"channels\[x\]"):
        Channels.parse({"channels": [{"id": "x", "type": "fax", "tenant_id": "acme"}]})
    with pytest.raises(ChannelConfigError, match="appears twice"):
        Channels.parse({"channels": [TELEGRAM, TELEGRAM]})


def test_unreadable_and_malformed_files_give_one_line(tmp_path: Path) -> None:
    with pytest.raises(ChannelConfigError, match="cannot read the channel file"):
        Channels.load(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("channels: [unclosed")
    with pytest.raises(ChannelConfigError, match="not valid YAML") as error:
        Channels.load(bad)
    assert "\n" not in str(error.value).split("(")[0]


@given(st.text(min_size=1, max_size=20))
def test_channel_ids_outside_the_safe_alphabet_are_refused(channel_id: str) -> None:
    candidate = {**TELEGRAM, "id": channel_id}
    safe = all(ch.isascii() and (ch.isalnum() or ch in "_.-") for ch in channel_id)
    if safe:
        assert Channels.parse({"channels": [candidate]}).get(channel_id) is not None
    else:
        with pytest.raises(ChannelConfigError):
            Channels.parse({"channels": [candidate]})


@given(st.sampled_from(["acme", "globex"]), st.sampled_from(["wa-main", "tg", "nowhere"]))
def test_a_channel_is_accepted_only_for_its_own_tenant(tenant_id: str, channel_id: str) -> None:
    channels = Channels.parse({"channels": [WHATSAPP, TELEGRAM]})
    if channel_id == "nowhere":
        expected = "unknown_channel"
    else:
        expected = None if tenant_id == "acme" else "channel_of_another_tenant"
    try:
        assert channels.of_tenant(tenant_id, channel_id).id == channel_id and expected is None
    except ChannelNotOfTenant as mismatch:
        assert mismatch.reason == expected
    with pytest.raises(ApiError) if expected else contextlib.nullcontext():  # an API says the same for both
        channels.for_caller(tenant_id, channel_id)
