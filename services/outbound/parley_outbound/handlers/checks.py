"""Request checks that need the channel's configuration (pure checks live in domain/validation)."""

from __future__ import annotations

from parley_common.events.common import ChannelType
from parley_common.events.outbound import SavedReplyContent, SendMessage
from parley_outbound.domain.validation import InvalidRequest, check_email_addresses


def check_command(command: SendMessage) -> None:
    if command.channel_type is ChannelType.EMAIL:
        check_email_addresses("recipient", [command.external_user_id])
        if command.email is not None:
            check_email_addresses("email.cc", command.email.cc)
            check_email_addresses("email.bcc", command.email.bcc)
    elif command.email is not None and (command.email.cc or command.email.bcc or command.email.subject):
        raise InvalidRequest("email_options_on_non_email", "subject, cc and bcc apply to email channels only",
                             "email")
    if isinstance(command.content, SavedReplyContent):
        # the pipeline renders saved replies before these checks; reaching here is a bug, never a send
        raise InvalidRequest("saved_reply_not_rendered", "the saved reply was not rendered", "content")
    if command.sender.kind.value == "human" and not command.sender.login:
        raise InvalidRequest("sender_login_required", "a message from a human records the sender's login",
                             "sender.login")
