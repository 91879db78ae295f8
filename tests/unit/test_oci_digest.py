from __future__ import annotations

import hashlib

import pytest

from regtopo.errors import DigestMismatchError
from regtopo.oci.digest import Digest, DigestVerifier, InvalidDigestError

EMPTY_SHA256 = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"


def test_digest_of_empty_json_is_the_spec_value() -> None:
    assert str(Digest.of(b"{}")) == EMPTY_SHA256


@pytest.mark.parametrize(
    "value",
    [
        "sha256:abc",  # too short
        "sha256:" + "A" * 64,  # upper-case hex
        "sha512:" + "a" * 64,  # sha512 needs 128
        "nocolon",
        "sha256:",
        ":" + "a" * 64,
    ],
)
def test_parse_refuses_malformed_digests(value: str) -> None:
    with pytest.raises(InvalidDigestError):
        Digest.parse(value)


def test_parse_accepts_sha512_and_unknown_grammatical_algorithms() -> None:
    sha512 = "sha512:" + "b" * 128
    assert str(Digest.parse(sha512)) == sha512
    assert Digest.parse("blake3:" + "c" * 64).algorithm == "blake3"


def test_verifier_accepts_exact_bytes_in_chunks() -> None:
    data = b"x" * 10_000
    digest = Digest("sha256", hashlib.sha256(data).hexdigest())
    verifier = DigestVerifier(digest, len(data), what="blob")
    for start in range(0, len(data), 333):
        verifier.update(data[start : start + 333])
    verifier.finish()
    assert verifier.received == 10_000


def test_verifier_refuses_more_bytes_than_declared_before_hashing_them() -> None:
    digest = Digest.of(b"abc")
    verifier = DigestVerifier(digest, 3, what="blob")
    with pytest.raises(DigestMismatchError, match="more than the 3 bytes"):
        verifier.update(b"abcd")


def test_verifier_refuses_short_and_altered_content() -> None:
    digest = Digest.of(b"abc")
    short = DigestVerifier(digest, 3, what="blob")
    short.update(b"ab")
    with pytest.raises(DigestMismatchError, match="received 2 bytes, descriptor says 3"):
        short.finish()

    altered = DigestVerifier(digest, 3, what="blob")
    altered.update(b"abd")
    with pytest.raises(DigestMismatchError, match=f"expected {digest}"):
        altered.finish()
