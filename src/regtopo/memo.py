"""Values made once per run and shared by threads, made concurrently for different keys."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class PerKey(Generic[K, T]):
    """Each key's value made once: callers of one key wait for the first maker, and other keys
    are made meanwhile (one lock per key, not one for all: a maker may be a slow request)."""

    def __init__(self) -> None:
        self._done: dict[K, T] = {}
        self._locks: dict[K, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: K, make: Callable[[], T]) -> T:
        with self._lock:
            if key in self._done:
                return self._done[key]
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                if key in self._done:
                    return self._done[key]
            value = make()
            with self._lock:
                self._done[key] = value
            return value
