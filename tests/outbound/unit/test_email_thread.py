"""An email reply threads under the customer's last mail (reference §5.3)."""

from __future__ import annotations

from parley_outbound.domain.email_thread import MAX_REFERENCES, EmailThread, reply_headers, reply_subject

THREAD = EmailThread("<c@x>", ("<a@x>", "<b@x>"), "Invoice question")


def test_subject_is_re_theirs_unless_given_and_never_re_re() -> None:
    assert reply_subject(THREAD, None) == "Re: Invoice question"
    assert reply_subject(THREAD, "Your invoice") == "Your invoice"
    assert reply_subject(EmailThread("<c@x>", (), "RE: Invoice"), None) == "RE: Invoice"
    assert reply_subject(None, None) is None


def test_headers_point_at_their_last_mail_and_carry_the_chain() -> None:
    assert reply_headers(THREAD) == {"In-Reply-To": "<c@x>", "References": "<a@x> <b@x> <c@x>"}
    assert reply_headers(None) == {}
    long = EmailThread("<last@x>", tuple(f"<{i}@x>" for i in range(50)))
    chain = reply_headers(long)["References"].split()
    assert len(chain) == MAX_REFERENCES and chain[-1] == "<last@x>"
