"""A phone typed in New conversation, as the address to write to on the chosen channel: the digits on WhatsApp
(the phone is the address), a user of the channel found in outbound's projection of the contacts on Telegram and
Viber (domain/phone_recipient.py)."""

from __future__ import annotations

from parley_common.channels import AnyChannel
from parley_common.clock import Clock
from parley_common.ids import ConversationKey
from parley_common.phones import InvalidPhoneNumber, to_e164
from parley_outbound.adapters.audience_repo import AudienceRepository
from parley_outbound.adapters.window_store import WindowStore
from parley_outbound.domain.phone_recipient import choose_identity, resolved_by_phone
from parley_outbound.domain.validation import InvalidRequest, phone_digits_to_write_first
from parley_outbound.domain.window import SendIntent

# Contacts sharing one phone (a family tablet, a shared office line): enough to choose from, bounded.
MAX_CONTACTS_PER_PHONE = 20
FIELD = "recipient.phone"


class PhoneRecipients:
    def __init__(self, audience: AudienceRepository, windows: WindowStore, clock: Clock) -> None:
        self._audience = audience
        self._windows = windows
        self._clock = clock

    async def address(self, tenant_id: str, channel: AnyChannel, raw_phone: str, intent: SendIntent) -> str:
        """The external user id to write to; InvalidRequest (`invalid_phone_number`, `customer_not_on_channel`)."""
        digits = phone_digits_to_write_first(raw_phone)
        if not resolved_by_phone(channel.type):
            return digits
        try:
            phone = to_e164(raw_phone)
        except InvalidPhoneNumber as invalid:
            raise InvalidRequest("invalid_phone_number", str(invalid), FIELD) from None
        contacts = await self._audience.reachable_by_phone(tenant_id, phone, channel.id, MAX_CONTACTS_PER_PHONE)
        users = list(dict.fromkeys(identity["external_user_id"] for contact in contacts
                                   for identity in contact.get("identities") or ()
                                   if identity["channel_id"] == channel.id))
        views = await self._windows.views([ConversationKey(tenant_id, channel.id, user) for user in users])
        user = choose_identity([(user, facts) for user, (facts, _) in zip(users, views, strict=True)], intent,
                               self._clock.now())
        if user is None:
            raise InvalidRequest("customer_not_on_channel",
                                 f"no contact with this phone is on this {channel.type.value} channel: a bot may "
                                 "write only to a customer who has written to it", FIELD)
        return user
