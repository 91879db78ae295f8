"""The read-ahead that overlaps a large blob's download with its upload."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from regtopo.apply.copy import _read_ahead


def test_read_ahead_hands_over_every_chunk_in_order() -> None:
    chunks = [bytes([n]) * 10 for n in range(50)]
    with _read_ahead(iter(chunks), depth=3) as ahead:
        assert list(ahead) == chunks


def test_an_error_while_reading_the_source_reaches_the_sender() -> None:
    def failing() -> Iterator[bytes]:
        yield b"first"
        raise ConnectionResetError("source dropped the connection")

    with _read_ahead(failing()) as ahead, pytest.raises(ConnectionResetError, match="dropped"):
        list(ahead)


def test_a_sender_that_stops_early_releases_the_reader() -> None:
    def endless() -> Iterator[bytes]:
        while True:
            yield b"x" * 1024

    before = {t.name for t in threading.enumerate()}
    with _read_ahead(endless(), depth=2) as ahead:
        assert next(ahead) == b"x" * 1024
    readers = [t for t in threading.enumerate() if t.name == "regtopo-read-ahead"]
    assert readers == [] or all(not t.is_alive() for t in readers)
    assert "regtopo-read-ahead" not in before
