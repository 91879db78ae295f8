"""Bounded retries for registry requests, with stamina.

Retried: 429 (honouring `Retry-After`), 408 and 5xx answers, and dropped or refused
connections. Not retried: every other 4xx, which retrying cannot fix.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from typing import TypeVar

import httpx
import stamina

from regtopo.registry.errors import RegistryError

T = TypeVar("T")

ATTEMPTS = 5
MAX_RETRY_AFTER = 60.0


def retry_after_seconds(response: httpx.Response) -> float | None:
    """`Retry-After` as delta-seconds or an HTTP-date, capped; None when absent or unreadable."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = parsed.timestamp() - time.time()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _backoff_hook(error: Exception) -> bool | float:
    if isinstance(error, RegistryError):
        if not error.retryable:
            return False
        return error.retry_after if error.retry_after is not None else True
    return isinstance(error, httpx.TransportError)


def retrying(operation: Callable[[], T], *, attempts: int = ATTEMPTS) -> T:
    """Run `operation`, retrying what a retry can fix, at most `attempts` times in all."""
    for attempt in stamina.retry_context(
        on=_backoff_hook, attempts=attempts, timeout=None, wait_initial=0.2, wait_max=10.0
    ):
        with attempt:
            return operation()
    raise AssertionError("unreachable: stamina re-raises the last error")
