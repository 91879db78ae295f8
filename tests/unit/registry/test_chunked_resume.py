"""Chunked uploads resume where the registry's `Range` says it stands (distribution-spec
"Pushing a blob in chunks"), against a fake registry that loses bytes on purpose."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from regtopo.oci.descriptor import Descriptor
from regtopo.oci.digest import Digest
from regtopo.registry.client import RegistryClient
from regtopo.registry.errors import RegistryError

DATA = os.urandom(3500)
LAYER = Descriptor(
    media_type="application/vnd.oci.image.layer.v1.tar",
    digest=Digest.parse("sha256:" + hashlib.sha256(DATA).hexdigest()),
    size=len(DATA),
)


class FakeRegistry:
    """One upload session; `keep(patch_number, stored)` decides how many bytes it holds
    after each PATCH (the default: all)."""

    def __init__(self, keep: object = None) -> None:
        self.stored = bytearray()
        self.ranges: list[str] = []
        self.keep = keep
        self.finished: bytes | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        location = {"Location": "/v2/a/b/blobs/uploads/s1"}
        if request.method == "POST":
            return httpx.Response(202, headers=location)
        if request.method == "PATCH":
            first, last = map(int, request.headers["content-range"].split("-"))
            self.ranges.append(f"{first}-{last}")
            if first != len(self.stored):
                return httpx.Response(416, headers=location)
            self.stored += request.content
            if callable(self.keep):
                del self.stored[self.keep(len(self.ranges) - 1, len(self.stored)) :]
            return httpx.Response(202, headers={**location, "Range": f"0-{len(self.stored) - 1}"})
        if request.method == "PUT":
            digest = re.search(r"digest=([^&]+)", str(request.url))
            assert digest and digest.group(1) == str(LAYER.digest)
            self.finished = bytes(self.stored)
            return httpx.Response(201)
        return httpx.Response(204)


def push(registry: FakeRegistry) -> list[int]:
    """Upload DATA in 1000-byte chunks from a source read 700 bytes at a time; the offsets
    the source was opened at."""
    opened: list[int] = []

    @contextmanager
    def opener() -> Iterator[Iterator[bytes]]:
        opened.append(0)
        yield iter([DATA[i : i + 700] for i in range(0, len(DATA), 700)])

    client = RegistryClient(
        "r",
        "registry.test",
        scheme="http",
        chunk_size=1000,
        transport=httpx.MockTransport(registry),
    )
    try:
        assert client.repository("a/b").push_blob(LAYER, opener) == "uploaded"
    finally:
        client.close()
    return opened


def test_bytes_lost_before_the_chunk_are_sent_again_from_a_reopened_source() -> None:
    # After the third chunk the registry holds only 1500 bytes (it lost part of the second).
    registry = FakeRegistry(keep=lambda n, stored: 1500 if n == 2 else stored)

    opened = push(registry)

    assert registry.ranges == ["0-999", "1000-1999", "2000-2999", "1500-2499", "2500-3499"]
    assert len(opened) == 2
    assert registry.finished == DATA


def test_part_of_a_chunk_is_sent_again_from_the_chunk_in_hand() -> None:
    registry = FakeRegistry(keep=lambda n, stored: stored - 300 if n == 1 else stored)

    opened = push(registry)

    assert registry.ranges == ["0-999", "1000-1999", "1700-1999", "2000-2999", "3000-3499"]
    assert len(opened) == 1
    assert registry.finished == DATA


def test_a_registry_that_never_keeps_a_chunk_stops_the_upload() -> None:
    registry = FakeRegistry(keep=lambda n, stored: min(stored, 1000))

    with pytest.raises(RegistryError, match="with no progress 9 times"):
        push(registry)
    assert registry.finished is None


def test_a_registry_keeping_part_of_every_chunk_still_gets_the_whole_blob() -> None:
    """A per-request cap below the chunk size: every answer is short, and every one moves
    forward; that is progress, however many times it happens."""
    registry = FakeRegistry(keep=lambda n, stored: min(stored, 300 * (n + 1)))

    opened = push(registry)

    assert len(registry.ranges) > 9  # more short answers than the no-progress bound
    assert registry.finished == DATA
    assert len(opened) == 1
