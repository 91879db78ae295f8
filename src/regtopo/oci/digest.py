"""Digests: `algorithm:encoded`, parsed strictly, computed over exact bytes.

Spec: image-spec `descriptor.md`, "Digests" and "Verification".
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from regtopo.errors import DigestMismatchError, RegtopoError

# Registered algorithms and the length of their hex encoding. Others that match the grammar are
# kept as opaque strings but cannot be verified.
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}

_GRAMMAR = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")


class InvalidDigestError(RegtopoError):
    """A string that is not a digest, or a registered algorithm with a malformed encoding."""


@dataclass(frozen=True, order=True)
class Digest:
    """A content digest such as `sha256:44136fa3…`."""

    algorithm: str
    encoded: str

    @classmethod
    def parse(cls, value: str) -> Digest:
        if not _GRAMMAR.fullmatch(value):
            raise InvalidDigestError(f"parsing digest {value!r}: not of the form algorithm:encoded")
        algorithm, encoded = value.split(":", 1)
        expected = ALGORITHMS.get(algorithm)
        if expected is not None and not re.fullmatch(rf"[a-f0-9]{{{expected}}}", encoded):
            raise InvalidDigestError(
                f"parsing digest {value!r}: {algorithm} needs {expected} lower-case hex characters"
            )
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        """The digest of `data` under `algorithm`."""
        hasher = new_hasher(algorithm)
        hasher.update(data)
        return cls(algorithm, hasher.hexdigest())

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"

    @property
    def short(self) -> str:
        """The first twelve characters of the encoding, for people reading a plan."""
        return f"{self.algorithm}:{self.encoded[:12]}"

    def verify(self, data: bytes, *, what: str = "content") -> None:
        """Raise `DigestMismatchError` unless `data` hashes to this digest."""
        actual = Digest.of(data, self.algorithm)
        if actual != self:
            raise DigestMismatchError(f"verifying {what}: expected {self}, got {actual}")


def new_hasher(algorithm: str) -> Any:
    """A hashlib object for a registered algorithm; unknown ones cannot be verified."""
    if algorithm not in ALGORITHMS:
        raise InvalidDigestError(
            f"digest algorithm {algorithm!r} is not supported for verification"
        )
    return hashlib.new(algorithm)


class DigestVerifier:
    """Hashes a stream chunk by chunk and checks size and digest at the end.

    Blobs never sit whole in memory: the copy engine feeds each chunk through this on its way
    from the source to the target.
    """

    def __init__(self, digest: Digest, size: int | None, *, what: str) -> None:
        self.digest = digest
        self.size = size
        self.what = what
        self.received = 0
        self._hasher = new_hasher(digest.algorithm)

    def update(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.size is not None and self.received > self.size:
            raise DigestMismatchError(
                f"verifying {self.what}: more than the {self.size} bytes its descriptor declares"
            )
        self._hasher.update(chunk)

    def finish(self) -> None:
        if self.size is not None and self.received != self.size:
            raise DigestMismatchError(
                f"verifying {self.what}: received {self.received} bytes, "
                f"descriptor says {self.size}"
            )
        actual = Digest(self.digest.algorithm, self._hasher.hexdigest())
        if actual != self.digest:
            raise DigestMismatchError(
                f"verifying {self.what}: expected {self.digest}, got {actual}"
            )
