"""The one error type a provider module lets out: vendor exceptions stay inside the module."""

from __future__ import annotations

from regtopo.errors import RegtopoError


class ProviderError(RegtopoError):
    """A provider's own API refused or failed."""
