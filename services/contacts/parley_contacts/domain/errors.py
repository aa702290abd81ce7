"""Validation failures of the contact card: each carries a machine-readable code for the HTTP 422 body."""

from __future__ import annotations


class InvalidInput(ValueError):
    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
