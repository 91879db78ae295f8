"""The error hierarchy: one base, one branch per subsystem.

The CLI catches `RegtopoError` alone, prints its `diagnostics()` and exits 1; anything else is a
bug and gets a traceback.
"""

from __future__ import annotations


class RegtopoError(Exception):
    """An expected failure: bad input, a registry that refused, content that did not verify."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def diagnostics(self) -> str:
        """The message, then what to check, for a person reading a terminal or a CI log."""
        text = self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class DigestMismatchError(RegtopoError):
    """Bytes read did not hash to the digest (or size) their descriptor promised."""


class ManifestError(RegtopoError):
    """A manifest that cannot be parsed or copied by digest (schema1, not JSON, too large)."""
