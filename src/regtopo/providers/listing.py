"""A provider's listing of each repository, read once per run."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Listings(Generic[T]):
    """Each repository read once: callers asking for one repository wait for the first read,
    and other repositories are read meanwhile (one lock per repository, not one for all)."""

    def __init__(self, read: Callable[[str], T]) -> None:
        self._read = read
        self._done: dict[str, T] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, repository: str) -> T:
        with self._lock:
            if repository in self._done:
                return self._done[repository]
            lock = self._locks.setdefault(repository, threading.Lock())
        with lock:
            with self._lock:
                if repository in self._done:
                    return self._done[repository]
            listing = self._read(repository)
            with self._lock:
                self._done[repository] = listing
            return listing
