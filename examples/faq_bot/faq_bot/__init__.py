"""An example bot on Parley's bot contract (docs/bots.md): greets, answers two FAQ intents by keyword, and hands
the conversation to a team with a note when the customer asks for a person."""
