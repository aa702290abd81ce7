"""What the example bot says (examples/faq_bot/faq_bot/brain.py): a greeting first, two FAQ intents by keyword
(whole words, any case), a hand-over on "agent" (and its synonyms), a menu when nothing matched."""

from __future__ import annotations

import pytest

from faq_bot import brain


@pytest.mark.parametrize(("text", "intent"), [
    ("What are your opening hours?", "opening_hours"),
    ("are you OPEN on sunday", "opening_hours"),
    ("How much is it?", "prices"),
    ("price list please", "prices"),
    ("I want an agent", "hand_over"),
    ("can a human help me with the price", "hand_over"),  # a person wins over an FAQ
    ("my reagent arrived broken", None),  # whole words only
])
def test_intents_by_keyword(text: str, intent: str | None) -> None:
    assert brain.reply_to(text, first=False).intent == intent


def test_greets_first_then_answers_and_hands_over_only_when_asked() -> None:
    first = brain.reply_to("hi, when are you open?", first=True)
    assert first.text.startswith(brain.GREETING) and "9:00-18:00" in first.text and not first.hand_over
    assert brain.reply_to("hello", first=True).text == f"{brain.GREETING} {brain.MENU}"
    assert brain.reply_to("hmm", first=False).text.endswith(brain.MENU)
    handing = brain.reply_to("Agent please", first=False)
    assert (handing.hand_over, handing.text) == (True, brain.HANDING_OVER)


def test_the_hand_over_note_quotes_the_last_messages_shortened() -> None:
    note = brain.hand_over_note(["one", "", "two", "x" * 500, "agent please"])
    assert note.startswith("FAQ bot: the customer asked for a person.")
    assert "one" not in note and "\u201ctwo\u201d" in note and "x" * 200 + "\u201d" in note and "x" * 201 not in note
    assert brain.hand_over_note([]).endswith("(nothing in text)")
