"""What the FAQ bot says: pure, no I/O. Keywords are matched as whole words (phrases as text), case-insensitively."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Intent:
    name: str
    keywords: tuple[str, ...]
    answer: str


INTENTS = (
    Intent("opening_hours", ("hours", "open", "opening", "closed", "closing"),
           "We are open Monday to Friday, 9:00-18:00 (UTC)."),
    Intent("prices", ("price", "prices", "cost", "costs", "how much", "fee", "fees"),
           "Plans start at 10 EUR a month, the first month free."),
)
HAND_OVER_WORDS = ("agent", "human", "person", "operator")
GREETING = "Hi! I am the FAQ bot."
MENU = "Ask me about our opening hours or prices, or write \"agent\" to talk to a person."
HANDING_OVER = "I am handing you over to a colleague; they will write to you here shortly."
NO_HAND_OVER = "Sorry, I cannot reach a colleague right now. Please write again later, or ask me about our " \
               "opening hours or prices."
NOTE_QUOTES, NOTE_QUOTE_CHARS = 3, 200  # the hand-over note quotes the customer's last few messages, shortened


@dataclass(frozen=True)
class Reply:
    text: str
    intent: str | None  # the FAQ answered, "hand_over", or None (not understood)
    hand_over: bool = False


def _has(text: str, keyword: str) -> bool:
    lowered = text.casefold()
    if " " in keyword:
        return keyword in lowered
    return keyword in re.findall(r"\w+", lowered)


def reply_to(text: str, first: bool) -> Reply:
    """The answer to one customer message; `first`: the conversation's opening message (greet first)."""
    greeting = f"{GREETING} " if first else ""
    if any(_has(text, word) for word in HAND_OVER_WORDS):
        return Reply(f"{greeting}{HANDING_OVER}", "hand_over", hand_over=True)
    answers = [intent for intent in INTENTS if any(_has(text, keyword) for keyword in intent.keywords)]
    if answers:
        return Reply(greeting + " ".join(intent.answer for intent in answers), answers[0].name)
    if first:
        return Reply(f"{GREETING} {MENU}", None)
    return Reply(f"Sorry, I did not get that. {MENU}", None)


def hand_over_note(customer_texts: list[str]) -> str:
    """The note the agent reads with the offer: what the customer last wrote to the bot."""
    quoted = [f"\u201c{text[:NOTE_QUOTE_CHARS]}\u201d" for text in customer_texts[-NOTE_QUOTES:] if text]
    said = "; ".join(quoted) if quoted else "(nothing in text)"
    return f"FAQ bot: the customer asked for a person. They wrote: {said}"
